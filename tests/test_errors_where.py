"""Environment failures name the step, the path and the cause; first runs share a fresh DB."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (the tests run as root, as CI does): a disk that fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs and needs root: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def convflow(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "convflow.pipelines.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_a_full_disk_names_step_path_and_cause(tiny_disk, small_idx, tmp_path, mlflow_server):
    cfg = tmp_path / "cfg.yaml"
    files = "\n".join(f"    {k}: {v}" for k, v in small_idx.items())
    cfg.write_text(
        f"pipeline: {{name: full_disk, artifact_root: {tiny_disk / 'store'}}}\n"
        f"ingest:\n  idx:\n{files}\n"
    )
    done = convflow("run", str(cfg), "--tracking-uri", mlflow_server, "--to", "ingest", "--quiet")
    assert done.returncode == 1, done.stderr[-2000:]
    assert re.search(r"\| ingest +\| failed +\|", done.stdout)  # the summary table
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert re.match(rf"error: ingest: No space left on device \(.*{tiny_disk}/store/", errors[0])
    assert "Traceback" not in done.stderr

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("full_disk")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED"]  # parent + ingest
    # Nothing half-published: only the store's own bookkeeping is left on the disk.
    assert not (tiny_disk / "store" / "ingest").exists() or not any(
        p.name.startswith(".tmp") for p in (tiny_disk / "store" / "ingest").iterdir()
    )


def test_two_first_runs_share_a_fresh_sqlite_database(tmp_path, fakeflow):
    """Two pipelines, one new tracking DB: MLflow's schema migration must not race itself."""
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    script = (
        "import sys, io\n"
        "from convflow.pipelines import runner\n"
        "from fakeflow.pipeline import build\n"
        "p, cfg = build(sys.argv[1], sys.argv[2])\n"
        "runner.run(p, cfg, runner.RunOptions(tracking_uri=sys.argv[3], show_progress=False),"
        " out=io.StringIO())\n"
        "print('OK')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{fakeflow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    results = [None, None]

    def one(i):
        root, log = tmp_path / f"store{i}", tmp_path / f"log{i}"
        results[i] = subprocess.run(
            [sys.executable, "-c", script, str(root), str(log), uri],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for done in results:
        assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stderr[-2000:]
