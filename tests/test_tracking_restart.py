"""Server restarts mid-run are ridden out; a server that never answers fails in seconds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, start_mlflow_server, stop_mlflow_server
from convflow.pipelines.cli import main
from convflow.pipelines.tracking import RETRY_S, retry_schedule
from mlflow.tracking import MlflowClient

TESTS = Path(__file__).parent


def start_server(data: Path, port: int) -> subprocess.Popen:
    log = data.parent / f"server-{port}-{time.monotonic_ns()}.log"
    return start_mlflow_server(data, port, log, wait_s=240)


def stop_server(proc: subprocess.Popen) -> None:
    stop_mlflow_server(proc, signal.SIGKILL)  # abrupt, like a crash or a redeploy


def start_pipeline(tmp_path, uri, budget_s):
    marker, go = tmp_path / "marker", tmp_path / "go"
    for f in (marker, go):
        f.unlink(missing_ok=True)
    env = {**os.environ, "CONVFLOW_TRACKING_RETRY_S": str(budget_s)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(TESTS / "restartflow.py"),
            str(tmp_path / "store"),
            uri,
            str(marker),
            str(go),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-2000:]
        time.sleep(0.2)
    return proc, go


def test_the_default_budget_covers_a_restart():
    retries, waited = retry_schedule(RETRY_S)
    assert RETRY_S >= 60 and waited >= RETRY_S and retries <= 10
    assert retry_schedule(5) == (3, 6)


@pytest.mark.slow
def test_a_server_restart_mid_run_loses_nothing(tmp_path):
    data, port = tmp_path / "server", free_port()
    data.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(data, port)
    try:
        # Restart: killed mid-step, back on the same port and store while the step logs.
        proc, go = start_pipeline(tmp_path, uri, budget_s=300)
        stop_server(server)
        go.touch()
        server = start_server(data, port)
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, out[-3000:]
        run_id = out.split("RUN ")[-1].split()[0]
        client = MlflowClient(uri)
        parent = client.get_run(run_id)
        assert parent.info.status == "FINISHED"
        steps = client.search_runs(
            [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
        )
        assert sorted((r.info.run_name, r.info.status) for r in steps) == [
            ("after", "FINISHED"),
            ("slow", "FINISHED"),
        ]
        slow = next(r for r in steps if r.info.run_name == "slow")
        history = client.get_metric_history(slow.info.run_id, "m")
        assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 2.0), (2, 3.0)]

        # Past the budget: one clear line, exit 1, within the budget plus the retries.
        proc, go = start_pipeline(tmp_path, uri, budget_s=5)
        stop_server(server)
        go.touch()
        t0 = time.monotonic()
        out = proc.communicate(timeout=300)[0]
        assert proc.returncode == 1
        assert "error: lost the MLflow tracking store mid-run" in out.splitlines()[-1]
        assert time.monotonic() - t0 < 120
    finally:
        stop_server(server)


def test_a_server_that_never_answers_fails_the_preflight_in_seconds(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVFLOW_TRACKING_PREFLIGHT_S", "3")
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(f"pipeline: {{name: silent, artifact_root: {tmp_path / 'store'}}}\n")
        t0 = time.monotonic()
        code = main(["run", str(cfg), "--tracking-uri", uri, "--quiet"])
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert err.startswith(f"error: MLflow tracking store {uri} is unreachable")
    assert elapsed < 20
