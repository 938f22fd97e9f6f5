"""``convflow export airflow``: the pipeline as an Airflow 3 DAG file a person can edit.

One ``BashOperator`` per step, each calling ``convflow run CONFIG --only STEP`` against
the config's artifact root and tracking URI (made absolute: Airflow runs tasks in a
temporary directory). Dependencies are the pipeline's wiring. All tasks of one DAG run
share one parent MLflow run (``--run-group`` = Airflow's run id), so MLflow shows what a
whole ``convflow run`` shows. Retries back off exponentially; the schedule comes from the
config's ``schedule:`` section. Airflow itself checks the file in tests/test_airflow_export.py.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from convflow.pipelines.config import ConfigError, ScheduleSettings

AIRFLOW_TEMPLATE = '''"""convflow pipeline {name!r} as an Airflow DAG (`convflow export airflow`).

Each task runs one step with `convflow run CONFIG --only STEP`; the store passes artifacts
between them. Edit freely: paths, schedule and retries are plain values below.
Regenerate with: {regenerate}
"""

import shlex
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

CONVFLOW = {convflow!r}  # the python of convflow's virtualenv
WORKDIR = {workdir!r}  # relative paths in the config are read from here, as at export
CONFIG = {config!r}
ARTIFACT_ROOT = {artifact_root!r}
TRACKING_URI = {tracking_uri!r}
OVERRIDES = {overrides!r}  # --set values given at export
RUN = [*CONVFLOW, "run", CONFIG, "--artifact-root", ARTIFACT_ROOT, "--tracking-uri", TRACKING_URI]
RUN += [arg for item in OVERRIDES for arg in ("--set", item)]
# All tasks of one DAG run share one parent MLflow run; --wait: queue behind a manual run.
RUN += ["--trigger", "airflow", "--wait", "3600", "--quiet"]


def step(name):
    command = shlex.join([*RUN, "--only", name]) + " --run-group '{{{{ run_id }}}}'"
    return BashOperator(task_id=name, bash_command=command, cwd=WORKDIR)


with DAG(
    dag_id={dag_id!r},
    schedule={cron!r},
    start_date=pendulum.datetime({start.year}, {start.month}, {start.day}, tz={timezone!r}),
    catchup=False,
    max_active_runs=1,  # a second run of this DAG would only wait for the first one's steps
    default_args={{
        "retries": {retries},
        "retry_delay": timedelta(seconds={retry_delay_s}),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds={max_retry_delay_s}),
    }},
    tags=["convflow"],
) as dag:
{tasks}

{edges}
'''


def convflow_command() -> list[str]:
    """``convflow`` as this interpreter runs it (its virtualenv, whatever PATH Airflow has)."""
    return [sys.executable, "-m", "convflow.pipelines.cli"]


def airflow_dag(pipeline, cfg, config_path: str, overrides: list[str], tracking_uri: str) -> str:
    """The DAG file's text for ``pipeline`` (a :class:`~convflow.pipelines.dag.Pipeline`)."""
    import datetime

    schedule = cfg.schedule or ScheduleSettings()
    order = pipeline.order()
    var = {name: name.replace("-", "_") for name in order}
    tasks = "\n".join(f"    {var[n]} = step({n!r})" for n in order)
    edges = []
    for name in order:
        ups = sorted(pipeline.steps[name].depends_on(), key=order.index)
        if ups:
            left = var[ups[0]] if len(ups) == 1 else f"[{', '.join(var[u] for u in ups)}]"
            edges.append(f"    {left} >> {var[name]}")
    config = str(Path(config_path).absolute())
    return AIRFLOW_TEMPLATE.format(
        name=pipeline.name,
        regenerate=shlex.join(["convflow", "export", "airflow", config_path, "-o", "DIR"]),
        convflow=convflow_command(),
        workdir=str(Path.cwd()),
        config=config,
        artifact_root=str(Path(cfg.pipeline.artifact_root).absolute()),
        tracking_uri=tracking_uri,
        overrides=list(overrides),
        dag_id=f"convflow_{pipeline.name}",
        cron=schedule.cron,
        start=datetime.date.today(),
        timezone=schedule.timezone,
        retries=schedule.retries,
        retry_delay_s=schedule.retry_delay_s,
        max_retry_delay_s=schedule.max_retry_delay_s,
        tasks=tasks,
        edges="\n".join(edges),
    )


def add_parser(sub, with_config) -> None:
    exp = sub.add_parser("export", help="write the pipeline for an external orchestrator")
    kinds = exp.add_subparsers(dest="target", required=True)
    air = kinds.add_parser("airflow", help="an Airflow 3 DAG file (one task per step)")
    with_config(air)
    air.add_argument("-o", "--output", required=True, metavar="DIR", help="the DAGs folder")
    air.add_argument("--tracking-uri", help="MLflow tracking URI the tasks use")
    air.add_argument("--artifact-root", help="override pipeline.artifact_root")
    air.set_defaults(fn=_cmd_export_airflow)


def _cmd_export_airflow(args) -> int:
    import dataclasses

    from convflow.pipelines.cli import load_config
    from convflow.pipelines.tracking import resolve_uri

    cfg, definition = load_config(args.config, args.set)
    if args.artifact_root:
        cfg = dataclasses.replace(
            cfg, pipeline=dataclasses.replace(cfg.pipeline, artifact_root=args.artifact_root)
        )
    pipeline = definition.create_pipeline(cfg)
    uri, _ = resolve_uri(args.tracking_uri or cfg.pipeline.tracking_uri)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {args.output}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"convflow_{pipeline.name}.py"
    path.write_text(airflow_dag(pipeline, cfg, args.config, args.set, uri))
    print(f"wrote {path} (DAG convflow_{pipeline.name}, {len(pipeline.steps)} tasks)")
    return 0
