"""``convflow sweep --max-parallel N`` with fake components: points in processes of their own.

Each point runs in a real spawned process against one artifact store and one embedded
(sqlite) MLflow store; the fake ``consume`` step can wait at a barrier until two points are
inside it at once, which a sweep whose points do not overlap can never pass.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from convflow.pipelines import runner, sweep
from mlflow.tracking import MlflowClient

GRID = {
    "grid": {"consume.value": [1, 2]},
    "seeds": [0, 1],
    "seed_key": "consume.seed",
    "metrics": ["double.value", "consume.value"],
}


def _write(path: Path, data) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.fixture
def parallel_sweep(fakeflow, tmp_path):
    """run(sweep dict, max_parallel, name) -> (rows, sweep run id, calls, store root, uri)."""
    from fakeflow.pipeline import build_point

    base = _write(tmp_path / "base.yaml", {"double": {"value": 1}})

    def run(data, max_parallel, name="a"):
        folder = tmp_path / name
        folder.mkdir()
        spec = sweep.load(_write(tmp_path / "sweep.yaml", {"base": "base.yaml", **data}))
        log, root = folder / "calls.log", folder / "store"
        log.write_text("")
        build = functools.partial(build_point, base, str(root), str(log))
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        opts = runner.RunOptions(tracking_uri=uri, show_progress=False)
        rows, sweep_id = sweep.run_sweep(
            spec, build, opts, out=io.StringIO(), max_parallel=max_parallel
        )
        return rows, sweep_id, log.read_text().split(), root, uri

    return run


def _points_csv(root: Path) -> list[dict]:
    (path,) = root.glob("sweeps/*/sweep_points.csv")
    with path.open() as f:
        return [{k: v for k, v in line.items() if k != "run_id"} for line in csv.DictReader(f)]


@pytest.mark.slow  # two spawned processes, each importing convflow and MLflow
def test_two_points_run_at_once_and_compute_shared_steps_once(parallel_sweep, tmp_path, capfd):
    barrier = tmp_path / "barrier"
    data = {**GRID, "seeds": [0], "set": {"consume.barrier": str(barrier), "consume.barrier_n": 2}}
    rows, sweep_id, calls, root, uri = parallel_sweep(data, max_parallel=2)
    assert [r.error for r in rows] == ["", ""]  # both passed the barrier: they overlapped
    # Two processes met there, and the steps both points need ran once (one point waited
    # for the other's key lock, then found a cache hit).
    assert len({p.name.split("-")[1] for p in barrier.glob("arrived-*")}) == 2
    assert sorted(calls) == ["consume", "consume", "double", "produce"]
    assert sorted(s for r in rows for s in r.statuses.values()) == ["cached"] * 2 + ["ran"] * 4
    assert [r.metrics["consume.value"] for r in rows] == [3.0, 4.0]  # the points' order
    client = MlflowClient(uri)
    assert client.get_run(sweep_id).info.status == "FINISHED"
    consume_runs = []
    for r in rows:
        parent = client.get_run(r.run_id)
        assert parent.data.tags["mlflow.parentRunId"] == sweep_id
        assert parent.data.tags[sweep.POINT_TAG] == r.point.label()
        assert parent.info.status == "FINISHED"
        (consume,) = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{r.run_id}' and "
            "attributes.run_name = 'consume'",
        )
        consume_runs.append(consume.info)
    # The two consume steps' MLflow runs overlap in time: each began before the other ended.
    assert max(i.start_time for i in consume_runs) < min(i.end_time for i in consume_runs)
    err = capfd.readouterr().err
    finished = [line for line in err.splitlines() if line.startswith("✔ point ")]
    assert len(finished) == 2 and "database is locked" not in err
    for n in (1, 2):  # each point's own output went to its log
        log = next(root.glob(f"sweeps/*/point-{n}.log")).read_text()
        assert "▶ consume: running" in log and "database is locked" not in log


@pytest.mark.slow  # a sequential and a parallel sweep of four fake points
def test_the_parallel_table_equals_the_sequential_one(parallel_sweep):
    seq_rows, _, seq_calls, seq_root, _ = parallel_sweep(GRID, max_parallel=1, name="seq")
    par_rows, _, par_calls, par_root, _uri = parallel_sweep(GRID, max_parallel=3, name="par")
    assert sorted(par_calls) == sorted(seq_calls)  # produce and double once, consume 4 times
    assert [r.point for r in par_rows] == [r.point for r in seq_rows]
    assert [r.metrics for r in par_rows] == [r.metrics for r in seq_rows]
    table = _points_csv(par_root)
    assert table == _points_csv(seq_root)
    assert [line["consume.value"] for line in table] == ["3.0", "4.0", "4.0", "5.0"]


@pytest.mark.slow  # two spawned processes
def test_a_failed_point_is_reported_and_the_other_still_runs(parallel_sweep, capfd):
    data = {"grid": {"double.fail": [True, False]}, "metrics": ["consume.value"]}
    rows, sweep_id, calls, root, uri = parallel_sweep(data, max_parallel=2)
    assert rows[0].error == "double: asked to fail" and rows[0].metrics == {}
    assert rows[1].error == "" and rows[1].metrics == {"consume.value": 3.0}
    assert sorted(calls) == ["consume", "double", "double", "produce"]
    assert MlflowClient(uri).get_run(sweep_id).info.status == "FAILED"
    err = capfd.readouterr().err
    log = next(root.glob("sweeps/*/point-1.log"))
    assert "✘ point 1 (double.fail=true) failed: double: asked to fail [" in err
    assert f"(log: {log})" in err


SWEEP_SCRIPT = """
import functools, io, sys
from convflow.pipelines import runner, sweep
from fakeflow.pipeline import build_point

if __name__ == "__main__":
    base, root, log, uri, path = sys.argv[1:6]
    build = functools.partial(build_point, base, root, log)
    opts = runner.RunOptions(tracking_uri=uri, show_progress=False)
    sweep.run_sweep(sweep.load(path), build, opts, out=io.StringIO(), max_parallel=2)
"""


@pytest.mark.slow  # a parallel sweep in a subprocess, interrupted, then resumed
def test_ctrl_c_stops_the_points_and_a_rerun_resumes_the_same_sweep(fakeflow, tmp_path):
    base = _write(tmp_path / "base.yaml", {"double": {"value": 1}})
    path = _write(tmp_path / "sweep.yaml", {"base": "base.yaml", **GRID, "seeds": [0]})
    root, log, marker = tmp_path / "store", tmp_path / "calls.log", tmp_path / "hanging"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fakeflow), os.environ.get("PYTHONPATH", "")]),
        "FAKEFLOW_HANG_MARKER": str(marker),  # double hangs, half-written; both points need it
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SWEEP_SCRIPT, base, str(root), str(log), uri, path],
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the sweep and both point processes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fake").experiment_id
    (killed,) = client.search_runs([exp], filter_string="attributes.run_name = 'sweep-sweep'")
    assert killed.info.status == "KILLED"
    (double,) = client.search_runs([exp], filter_string="attributes.run_name = 'double'")
    assert double.info.status == "KILLED"
    # The points' runs are closed too, even one that Ctrl-C caught as it was being created.
    assert not client.search_runs([exp], filter_string="attributes.status = 'RUNNING'")
    assert list((root / "double").glob(".tmp-*/examples/part-1.bin"))  # hidden, unpublished

    log.write_text("")
    build = functools.partial(fakeflow_build_point(), base, str(root), str(log))
    opts = runner.RunOptions(tracking_uri=uri, show_progress=False)
    spec = sweep.load(path)
    rows, sweep_id = sweep.run_sweep(spec, build, opts, out=io.StringIO(), max_parallel=2)
    assert sweep_id == killed.info.run_id  # the same sweep run, resumed
    assert client.get_run(sweep_id).info.status == "FINISHED"
    assert sorted(log.read_text().split()) == ["consume", "consume", "double"]  # produce: hit
    assert [r.metrics["consume.value"] for r in rows] == [3.0, 4.0]
    assert not list((root / "double").glob(".tmp-*"))  # the killed run's half write: swept


def fakeflow_build_point():
    from fakeflow.pipeline import build_point

    return build_point
