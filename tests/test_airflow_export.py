"""The exported DAG, checked by Airflow itself: a separate virtualenv with a pinned
apache-airflow (.ci/airflow-venv.sh) loads it through DagBag and runs `airflow dags test`,
whose tasks call `convflow run --only STEP` for real."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
NAME = "airflow_small"
STEPS = ["ingest", "preprocess", "validate_data", "train", "evaluate", "register"]
UPSTREAM = {  # the pipeline's wiring (pipelines/definitions/image_classification.py)
    "ingest": [],
    "preprocess": ["ingest"],
    "validate_data": ["ingest", "preprocess"],
    "train": ["preprocess", "validate_data"],
    "evaluate": ["ingest", "preprocess", "train"],
    "register": ["evaluate", "preprocess", "train"],
}
DAGBAG_CHECK = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = next(iter(bag.dags.values()), None)
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "schedule": getattr(dag.timetable, "expression", None) if dag else None,
    "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} if dag else {},
    "retries": sorted({t.retries for t in dag.tasks}) if dag else [],
    "backoff": sorted({bool(t.retry_exponential_backoff) for t in dag.tasks}) if dag else [],
}))
"""


@pytest.fixture(scope="module")
def airflow_venv() -> Path:
    """The pinned Airflow virtualenv (created once, cached outside the repo)."""
    done = subprocess.run(
        ["bash", str(REPO / ".ci" / "airflow-venv.sh")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def _airflow_env(tmp_path: Path, dags: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


@pytest.mark.slow
def test_airflow_loads_the_dag_and_runs_the_real_steps_in_order(airflow_venv, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    store, uri = tmp_path / "store", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg.write_text(
        f"pipeline: {{name: {NAME}, artifact_root: {store}}}\n"
        "schedule: {cron: '0 2 * * *', retries: 0}\n"
        "ingest: {max_examples: 300}\n"
        "train: {epochs: 1, batch_size: 64, model_kwargs: {filters: [4, 8]}}\n"
        "evaluate: {min_accuracy: 0.1}\n"
    )
    dags = tmp_path / "dags"
    assert main(["export", "airflow", str(cfg), "-o", str(dags), "--tracking-uri", uri]) == 0
    dag_file = dags / f"convflow_{NAME}.py"
    assert dag_file.is_file() and len(dag_file.read_text().splitlines()) < 80  # readable
    env = _airflow_env(tmp_path, dags)
    python = str(airflow_venv / "bin" / "python")

    checked = subprocess.run(
        [python, "-c", DAGBAG_CHECK, str(dags)], env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    bag = json.loads(checked.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert bag["dags"] == [f"convflow_{NAME}"]
    assert bag["tasks"] == UPSTREAM
    assert (bag["schedule"], bag["retries"], bag["backoff"]) == ("0 2 * * *", [0], [True])

    airflow = str(airflow_venv / "bin" / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    ran = subprocess.run(
        [airflow, "dags", "test", f"convflow_{NAME}"], env=env, capture_output=True, text=True
    )
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log[-5000:]
    ends = [line.split("task_id=")[1].split()[0] for line in log.splitlines() if "end task" in line]
    assert ends == STEPS  # in DAG order
    assert "state=success" in log

    # The store and MLflow look as after a whole `convflow run`.
    for step in STEPS:
        assert len(list((store / step).glob("*/step.json"))) == 1, step
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(NAME)
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.trigger = 'airflow'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["convflow.summary"] == " ".join(f"{s}=ran" for s in STEPS)
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(STEPS)
    assert {r.data.tags["cache"] for r in children} == {"miss"}
    version = client.get_model_version_by_alias(NAME, "champion")
    assert version.tags["convflow.pipeline_run_id"] == parent.info.run_id

    capsys.readouterr()
    assert main(["run", str(cfg), "--tracking-uri", uri, "--quiet"]) == 0
    assert capsys.readouterr().out.count("| cached ") == len(STEPS)  # a manual run: all done
