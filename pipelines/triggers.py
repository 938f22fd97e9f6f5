"""Who started a run, and runs split over several processes (one step each).

Every parent MLflow run carries ``trigger`` (``manual`` for ``convflow run`` by hand,
``schedule`` or ``data`` from ``convflow schedule``, ``airflow`` from an exported DAG) plus
the trigger's own tags (``schedule=<cron expr>``, ``data.old_fingerprint``, ...).

An external orchestrator runs one step per process (``convflow run --only STEP``). With a
``--run-group ID`` those processes share one parent run, so the MLflow UI shows the same
parent with one nested run per step as after a whole ``convflow run``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

TRIGGERS = ("manual", "schedule", "data", "airflow")
RUN_GROUP_TAG = "convflow.run_group"
SUMMARY_TAG = "convflow.summary"


def trigger_tags(trigger: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The parent run's tags for ``trigger`` (one of :data:`TRIGGERS`) and its details."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger={trigger!r}; expected one of {TRIGGERS}")
    return {"trigger": trigger, **{k: str(v)[:5000] for k, v in extra.items()}}


def parse_tags(items: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` from the command line -> ``{"k": "v"}``.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--tag {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


@contextlib.contextmanager
def parent_run(experiment_id: str, run_name: str, group: str | None) -> Iterator:
    """Starts the pipeline's parent run, or re-opens the one of ``group`` when it exists."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if group:
        found = MlflowClient().search_runs(
            [experiment_id],
            filter_string=f"tags.`{RUN_GROUP_TAG}` = '{_quote(group)}'",
            max_results=1,
        )
        if found:
            with mlflow.start_run(run_id=found[0].info.run_id) as run:
                yield run
            return
    from convflow.pipelines.tracking import process_tags

    # Born with its host and pid: a Ctrl-C that lands before the run is entered leaves it
    # RUNNING, and the next run's mark_orphans_killed can close it only by these tags.
    tags = {**process_tags(), **({RUN_GROUP_TAG: group} if group else {})}
    name = f"{run_name}-{group}" if group else run_name
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        yield run


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def summary(parent, results) -> str:
    """``step=status ...`` for the parent run; a group's earlier steps keep their status."""
    import mlflow

    known = {}
    if parent.data.tags.get(RUN_GROUP_TAG):
        old = mlflow.get_run(parent.info.run_id).data.tags.get(SUMMARY_TAG, "")
        known = dict(item.split("=", 1) for item in old.split() if "=" in item)
    for r in results:
        if r.status != "not run" or r.name not in known:
            known[r.name] = r.status.replace(" ", "_")
    return " ".join(f"{r.name}={known[r.name]}" for r in results)


def missing_upstream(pipeline, opts, name: str) -> str:
    """The one-line error for a partial run whose upstream step ``name`` is not published."""
    target = opts.only or opts.from_step
    flag = "--only" if opts.only else "--from"
    needed = [s for s in pipeline.order() if s in pipeline.upstream(target)]
    last = needed[-1] if needed else name
    return (
        f"{flag} {target}: upstream step {name!r} has no published output for this config "
        f"({target} needs {', '.join(needed)}); run them first: convflow run CONFIG --to {last}"
    )
