"""The DAG runner with fake components: order, cache, partial runs, crash safety, MLflow."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from convflow.components.base import EXAMPLES, MODEL, Context, component
from convflow.pipelines import runner
from convflow.pipelines.dag import Pipeline, PipelineError
from convflow.pipelines.store import ArtifactStore, StoreLockedError
from mlflow.tracking import MlflowClient


@pytest.fixture
def fake(fakeflow, tmp_path, sqlite_uri):
    """Runs the fake pipeline; returns a function run(**opts) -> (statuses, calls made)."""
    from fakeflow.pipeline import build

    log = tmp_path / "calls.log"
    root = str(tmp_path / "store")

    def run(sections=None, **opts):
        log.write_text("")
        pipeline, cfg = build(root, str(log), **(sections or {}))
        options = runner.RunOptions(tracking_uri=sqlite_uri, show_progress=False, **opts)
        results, run_id = runner.run(pipeline, cfg, options, out=io.StringIO())
        return {r.name: r.status for r in results}, log.read_text().split(), run_id

    run.root = root
    return run


def test_first_run_executes_in_dependency_order(fake):
    statuses, calls, _ = fake()
    assert calls == ["produce", "double", "consume"]
    assert statuses == {"produce": "ran", "double": "ran", "consume": "ran"}


def test_second_run_is_all_cache_hits(fake):
    fake()
    statuses, calls, _ = fake()
    assert calls == []
    assert set(statuses.values()) == {"cached"}


def test_changed_param_reruns_that_step_and_downstream_only(fake):
    fake()
    statuses, calls, _ = fake({"double": {"value": 5}})
    assert calls == ["double", "consume"]
    assert statuses["produce"] == "cached"


def test_unchanged_output_does_not_rerun_downstream(fake):
    # Inputs are keyed by content: a re-run step that writes the same bytes leaves
    # everything downstream cached.
    fake()
    statuses, calls, _ = fake({"double": {"note": "same output"}})
    assert calls == ["double"]
    assert statuses["consume"] == "cached"


def _run_in_subprocess(fakeflow, root, uri, log, marker=None):
    # A fresh interpreter, as a real `convflow run` would be: edited modules are re-imported.
    env = {**os.environ, "PYTHONPATH": f"{fakeflow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "fakeflow.main", str(root), uri, str(log)]
    return subprocess.Popen([*cmd, str(marker)] if marker else cmd, env=env, start_new_session=True)


def test_changed_helper_module_reruns_the_component_that_imports_it(fake, fakeflow, sqlite_uri):
    fake()
    helper = fakeflow / "fakeflow" / "helper.py"
    original = helper.read_text()
    log = Path(fake.root).parent / "calls.log"
    log.write_text("")
    try:
        helper.write_text(original.replace("FACTOR = 2", "FACTOR = 3"))
        assert _run_in_subprocess(fakeflow, fake.root, sqlite_uri, log).wait() == 0
    finally:
        helper.write_text(original)
    assert log.read_text().split() == ["double", "consume"]  # produce does not import helper


def test_force_reruns_everything(fake):
    fake()
    _, calls, _ = fake(force=True)
    assert calls == ["produce", "double", "consume"]


def test_from_reruns_step_and_downstream(fake):
    fake()
    statuses, calls, _ = fake(from_step="double")
    assert calls == ["double", "consume"]
    assert statuses["produce"] == "not run"


def test_to_stops_after_step(fake):
    statuses, calls, _ = fake(to_step="double")
    assert calls == ["produce", "double"]
    assert statuses["consume"] == "not run"


def test_from_without_published_upstream_is_a_clear_error(fake):
    with pytest.raises(PipelineError, match="upstream step 'produce' has no published output"):
        fake(from_step="double")


def test_outputs_are_published_with_fingerprint_and_values(fake):
    fake()
    store = ArtifactStore(fake.root)
    (consume_dir,) = (Path(fake.root) / "consume").iterdir()
    meta = json.loads((consume_dir / "model" / "artifact.json").read_text())
    assert meta["type"] == MODEL
    assert meta["properties"] == {"value": 3}  # (1 * 2) + 1
    assert len(meta["fingerprint"]) == 64
    assert store.record("consume", json.loads((consume_dir / "step.json").read_text())["key"])[
        "metrics"
    ] == {"value": 3.0}


def test_failed_step_stops_the_run_and_marks_mlflow_failed(fake, sqlite_uri):
    statuses, calls, run_id = fake({"double": {"fail": True}})
    assert statuses["double"] == "failed"
    assert calls == ["produce", "double"]
    client = MlflowClient(sqlite_uri)
    assert client.get_run(run_id).info.status == "FAILED"
    children = client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
    )
    by_name = {r.info.run_name: r for r in children}
    assert by_name["double"].info.status == "FAILED"
    assert by_name["double"].data.tags["error"] == "double: asked to fail"
    assert not list((Path(fake.root) / "double").glob(".tmp-*"))  # the half artifact is gone


def test_mlflow_records_nested_runs_for_work_and_only_a_parent_for_cache_hits(fake, sqlite_uri):
    _, _, first_id = fake()
    _, _, run_id = fake()
    client = MlflowClient(sqlite_uri)
    parent = client.get_run(run_id)
    assert parent.info.status == "FINISHED"
    assert "config_hash" in parent.data.tags
    assert {a.path for a in client.list_artifacts(run_id)} >= {
        "config.yaml",
        "package_versions.json",
    }
    exp = [parent.info.experiment_id]
    workers = client.search_runs(exp, filter_string=f"tags.mlflow.parentRunId = '{first_id}'")
    assert sorted(r.info.run_name for r in workers) == ["consume", "double", "produce"]
    for r in workers:
        assert r.data.tags["cache"] == "miss"
        assert len(r.data.tags["cache_key"]) == 64
        assert r.data.params["value"] == "1"
    # The all-cached invocation writes one run: no copies of the steps' metrics.
    assert not client.search_runs(exp, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert len(client.search_runs(exp)) == 3 + 1 + 1
    assert parent.data.tags["cache"] == "hit"
    assert parent.data.metrics == {}
    producers = {r.info.run_name: r.info.run_id for r in workers}
    for step, producer in producers.items():
        assert parent.data.tags[f"convflow.cached_from.{step}"] == producer
    assert client.get_run(first_id).data.tags["cache"] == "miss"


def test_lock_rejects_a_second_run(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.lock():
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "from convflow.pipelines.store import ArtifactStore; import sys;"
                f"ArtifactStore({str(tmp_path)!r}).lock().__enter__()",
            ],
            capture_output=True,
            text=True,
        )
    assert child.returncode != 0
    assert "another convflow run (pid" in child.stderr
    with store.lock():  # released: free again
        pass
    with pytest.raises(StoreLockedError), store.lock(), store.lock(timeout=0.6):
        pass


def test_sigkill_mid_step_leaves_no_half_artifact_and_rerun_resumes(fakeflow, tmp_path, sqlite_uri):
    root, log, marker = tmp_path / "store", tmp_path / "calls.log", tmp_path / "hanging"
    proc = _run_in_subprocess(fakeflow, root, sqlite_uri, log, marker)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the fake step never started"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((root / "produce").glob("*/step.json"))  # finished before the crash
    assert not list((root / "double").glob("*/step.json"))  # nothing published
    assert list(
        (root / "double").glob(".tmp-*/examples/part-1.bin")
    )  # the half write stayed hidden

    from fakeflow.pipeline import build

    log.write_text("")
    pipeline, cfg = build(str(root), str(log))
    results, _ = runner.run(
        pipeline,
        cfg,
        runner.RunOptions(tracking_uri=sqlite_uri, show_progress=False),
        out=io.StringIO(),
    )
    assert {r.name: r.status for r in results} == {
        "produce": "cached",
        "double": "ran",
        "consume": "ran",
    }
    assert log.read_text().split() == ["double", "consume"]
    assert not list((root / "double").glob(".tmp-*"))  # swept
    client = MlflowClient(sqlite_uri)
    killed = client.search_runs(
        [client.get_experiment_by_name("fake").experiment_id],
        filter_string="attributes.status = 'KILLED'",
    )
    assert {r.info.run_name for r in killed} >= {
        "double"
    }  # the orphan was closed, not left RUNNING


def test_an_interrupt_a_library_turned_into_an_error_ends_the_step_killed(fake, sqlite_uri):
    # SIGINT during the step, re-raised by the step's own cleanup as a RuntimeError: the step
    # was stopped, not broken. Without the runner's SIGINT note it would end FAILED.
    with pytest.raises(KeyboardInterrupt):
        fake({"double": {"interrupted_cleanup": True}})
    client = MlflowClient(sqlite_uri)
    exp_id = client.get_experiment_by_name("fake").experiment_id
    double = client.search_runs([exp_id], filter_string="attributes.run_name = 'double'")
    assert [r.info.status for r in double] == ["KILLED"]
    assert not list((Path(fake.root) / "double").glob("*/step.json"))  # nothing published
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_a_step_that_fails_without_an_interrupt_still_ends_failed(fake, sqlite_uri):
    statuses, _, _ = fake({"double": {"crash": True}})
    assert statuses["double"] == "failed"
    client = MlflowClient(sqlite_uri)
    exp_id = client.get_experiment_by_name("fake").experiment_id
    double = client.search_runs([exp_id], filter_string="attributes.run_name = 'double'")
    assert [r.info.status for r in double] == ["FAILED"]


def _noop(ctx: Context) -> None:
    pass


def test_dag_order_select_and_wiring_errors():
    from fakeflow.steps import Params

    a = component(name="a", inputs={}, outputs={"ex": EXAMPLES}, params=Params)(_noop)
    b = component(name="b", inputs={"ex": EXAMPLES}, outputs={"ex": EXAMPLES}, params=Params)(_noop)
    m = component(name="m", inputs={"ex": EXAMPLES}, outputs={"model": MODEL}, params=Params)(_noop)
    p = Pipeline("diamond")
    sa = p.add(a, Params())
    sb = p.add(b, Params(), name="left", ex=sa["ex"])
    p.add(b, Params(), name="right", ex=sa["ex"])
    p.add(m, Params(), ex=sb["ex"])
    assert p.order() == ["a", "left", "right", "m"]
    assert p.select(from_step="left") == ["left", "m"]
    assert p.select(to_step="left") == ["a", "left"]
    with pytest.raises(PipelineError, match="wants Examples, got Model"):
        p.add(b, Params(), name="bad", ex=p.steps["m"]["model"])
    with pytest.raises(PipelineError, match="unwired inputs"):
        p.add(b, Params(), name="loose")
    with pytest.raises(PipelineError, match="unknown step 'nope'"):
        p.select(from_step="nope")


def test_train_cache_key_sees_the_model_zoo_sources():
    # The train step builds models by name through the registry; the family modules must
    # still be part of its source closure, or editing a model would leave a stale cache.
    from convflow.pipelines.cache import source_closure

    modules = {name for name, _ in source_closure("convflow.components.train.executor")}
    assert {
        "convflow.models.lenet",
        "convflow.models.resnet",
        "convflow.models.layers.tiled",
        "convflow.models.common",
    } <= modules
    assert "convflow.components.ingest.executor" not in modules


def test_artifact_properties_are_part_of_the_fingerprint(fake, fakeflow):
    # Same bytes, other properties (say, renamed classes) must not look like the same input.
    from convflow.components.base import OutputArtifact

    store = ArtifactStore(Path(fake.root))
    fingerprints = []
    for value in (1, 2):
        tmp = store.begin("probe", f"{value:064d}")
        (tmp / "examples").mkdir()
        (tmp / "examples" / "data.bin").write_bytes(b"same bytes")
        out = OutputArtifact(str(tmp / "examples"), EXAMPLES, {"class_names": [f"c{value}"]})
        art = store.publish("probe", f"{value:064d}", tmp, {"examples": out}, {})
        fingerprints.append(art["examples"].fingerprint)
    assert fingerprints[0] != fingerprints[1]


def test_relative_sqlite_uri_keeps_artifacts_beside_the_db(tmp_path, monkeypatch):
    from convflow.pipelines.tracking import resolve_uri

    monkeypatch.chdir(tmp_path)
    uri, artifacts = resolve_uri("sqlite:///sub/mlflow.db")
    assert uri == "sqlite:///sub/mlflow.db"
    assert artifacts == (tmp_path / "sub" / "mlartifacts").as_uri()


def test_a_bug_is_one_line_with_its_traceback_kept(fake, sqlite_uri):
    statuses, _, run_id = fake({"double": {"crash": True}})
    assert statuses == {"produce": "ran", "double": "failed", "consume": "not run"}
    client = MlflowClient(sqlite_uri)
    exp = client.get_run(run_id).info.experiment_id
    (double,) = client.search_runs(
        [exp],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and attributes.run_name = 'double'",
    )
    error = double.data.tags["error"]
    assert error.startswith("double: RuntimeError: a bug (traceback: ") and "\n" not in error
    trace = Path(error.split("(traceback: ")[1].rstrip(")"))
    assert "Traceback (most recent call last)" in trace.read_text()
    assert trace.name in {a.path for a in client.list_artifacts(double.info.run_id)}


def test_a_parent_package_does_not_pull_in_what_it_loads_lazily():
    # preprocess uses models.layers.contrast; importing it runs models/__init__, which
    # loads the zoo only when a model is built. Editing a model must not re-run Beam.
    from convflow.pipelines.cache import source_closure

    executor = "convflow.components.preprocess.executor"
    modules = {name for name, _ in source_closure(executor, "classification")}
    assert {
        "convflow.models.layers.contrast",
        "convflow.models",
        "convflow.models.registry",
    } <= modules
    assert not {"convflow.models.zoo", "convflow.models.yolo", "convflow.models.lenet"} & modules


HOLD_KEY = """
import sys
from convflow.pipelines.store import ArtifactStore
ArtifactStore(sys.argv[1]).claim(sys.argv[2], sys.argv[3], force=True)
print("held", flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def _another_run_computing(root: str, step: str):
    """A process holding the lock of ``step``'s published key, as a run redoing it would;
    yields its pid."""
    (published,) = [p for p in (Path(root) / step).iterdir() if p.name[0] != "."]
    key = json.loads((published / "step.json").read_text())["key"]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_KEY, root, step, key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_run_stopped_at_its_first_step_by_another_run_leaves_no_row(fake, sqlite_uri):
    # A cron tick while the last run still computes the first step: an error, but no FAILED
    # parent row per tick in the dashboard (the run is ended KILLED and deleted).
    _, _, first_id = fake()
    with (
        _another_run_computing(fake.root, "produce") as pid,
        pytest.raises(StoreLockedError, match=f"pid {pid}"),
    ):
        fake(force=True)
    client = MlflowClient(sqlite_uri)
    exp = client.get_run(first_id).info.experiment_id
    live = [r for r in client.search_runs(exp) if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in live] == [first_id]
    deleted = client.search_runs(exp, run_view_type=2)  # ViewType.DELETED_ONLY
    assert [r.info.status for r in deleted] == ["KILLED"]
    _, calls, _ = fake(force=True)  # the key is free again
    assert calls == ["produce", "double", "consume"]


def test_a_forced_run_needs_the_store_to_itself_and_a_run_group_parent_stays(fake, sqlite_uri):
    # --force swaps published directories other runs may be reading: no run may share it.
    _, _, first_id = fake()
    with ArtifactStore(fake.root).lock(shared=True):  # another run in progress
        with pytest.raises(StoreLockedError, match="holds"):
            fake(force=True)
        statuses, _, _ = fake()  # a plain run shares the store
        assert set(statuses.values()) == {"cached"}
    # A run group's parent (Airflow's DAG run) holds other steps' runs: a lock conflict in one
    # of its steps leaves it in place.
    with _another_run_computing(fake.root, "produce"), pytest.raises(StoreLockedError):
        fake(only="produce", force=True, run_group="dag-1")
    client = MlflowClient(sqlite_uri)
    exp = client.get_run(first_id).info.experiment_id
    assert not client.search_runs(exp, run_view_type=2)  # nothing deleted
    assert client.search_runs(exp, "tags.`convflow.run_group` = 'dag-1'")
