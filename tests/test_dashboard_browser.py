"""The MLflow UI in a real browser: a first-time visitor lands on the runs table with the
headline metric of the pipeline run (headless Chromium over a real ``mlflow server``)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port
from convflow.pipelines import dashboard
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` after its scripts ran, in a fresh profile (a first visit)."""
    assert CHROMIUM, "headless Chromium is missing: apt-get install -y chromium (.ci/run does)"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--window-size=2400,900",  # wide enough that the grid renders every column
        "--virtual-time-budget=20000",
    ]
    if screenshot is not None:
        subprocess.run([*cmd, f"--screenshot={screenshot}", url], capture_output=True, timeout=300)
    done = subprocess.run([*cmd, "--dump-dom", url], capture_output=True, text=True, timeout=300)
    return done.stdout


@pytest.fixture
def ui_server(tmp_path):
    """``mlflow server`` on a loopback port over a sqlite store; yields (store URI, base URL)."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(store).search_experiments()  # create the schema before the server reads it
    port = free_port()
    server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store]
    proc = subprocess.Popen(
        [*server, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError("mlflow server did not start") from None
            time.sleep(0.5)
    yield store, base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_first_visit_opens_the_runs_table_with_the_headline_metric(ui_server, tmp_path, capsys):
    store, base = ui_server
    cfg = tmp_path / "ui.yaml"
    cfg.write_text(
        f"pipeline: {{name: ui_check, artifact_root: {tmp_path / 'store'}}}\n"
        "ingest: {max_examples: 500}\n"
        "train: {epochs: 1, batch_size: 64, model_kwargs: {lenet5: {filters: [6, 16]}}}\n"
    )
    assert main(["run", str(cfg), "--tracking-uri", store, "--quiet"]) == 0
    result = capsys.readouterr().out.splitlines()[-1]
    assert result.startswith("result: accuracy ")

    client = MlflowClient(store)
    exp = client.get_experiment_by_name("ui_check")
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.config_hash != ''")
    accuracy = parent.data.metrics["accuracy"]

    dom = render(dashboard.ui_url(base, exp.experiment_id), tmp_path / "profile")
    (tmp_path / "runs.html").write_text(dom)  # to look at when an assertion fails
    # The model-training view's runs table, not the GenAI overview.
    assert "Model registry" in dom and "Detect Issues" not in dom
    assert 'col-id="metrics.`accuracy`"' in dom
    assert parent.info.run_name in dom  # "ui_check · lenet5 · 1a2b"
    cells = re.findall(r'id="cell-metrics\.`accuracy`-\d+" class="ag-cell-value">([^<]*)<', dom)
    assert repr(accuracy) in cells
