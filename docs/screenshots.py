"""Screenshots of the MLflow UI after a run of the default pipeline, for the README.

    ./bootstrap.sh                                  # a real run of the default pipeline
    .venv/bin/python docs/screenshots.py            # -> docs/runs_table.png, train_run.png,
                                                    #    registry.png

Serves the store (default: the embedded ``convflow_runs/mlflow.db`` of the current directory)
with ``mlflow server`` on a free loopback port and photographs it with headless Chromium
(Debian: ``apt-get install chromium``) in a fresh profile, i.e. as a first-time visitor sees it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from convflow.pipelines.dashboard import ML_VIEW_QUERY, ui_url
from convflow.pipelines.tracking import resolve_uri
from mlflow import MlflowClient

DOCS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(uri: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers go with it (killpg)
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    sys.exit("error: mlflow server did not start within 180 s")


def shoot(chromium: str, url: str, out: Path, size: str, budget_ms: int = 20000) -> None:
    """A PNG of ``url`` once the page settled (``budget_ms`` of the page's virtual time)."""
    with tempfile.TemporaryDirectory() as profile:  # a first-time visitor
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={out}",
                url,
            ],
            capture_output=True,
            timeout=600,
            check=True,
        )
    print(f"wrote {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", help="store (default: the embedded one in the cwd)")
    ap.add_argument("--experiment", default="fashion_mnist_lenet")
    ap.add_argument("--model", default="fashion_mnist_lenet", help="registered model name")
    ap.add_argument("--out", type=Path, default=DOCS)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("error: headless Chromium is missing: apt-get install -y chromium")
    uri, _ = resolve_uri(args.tracking_uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        sys.exit(f"error: no experiment {args.experiment!r} in {uri}; run the pipeline first")
    (train,) = client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.run_name = 'train'",
        order_by=["start_time DESC"],
        max_results=1,
    )
    port = free_port()
    proc = serve(uri, port)
    base = f"http://127.0.0.1:{port}"
    try:
        shoot(chromium, ui_url(base, exp.experiment_id), args.out / "runs_table.png", "2600,650")
        run_page = f"{base}/#/experiments/{exp.experiment_id}/runs/{train.info.run_id}"
        # The run's training curves (its Model metrics tab draws nothing in headless Chromium).
        shoot(
            chromium,
            f"{run_page}/artifacts/training_curves.png?{ML_VIEW_QUERY}",
            args.out / "train_run.png",
            "1600,900",
        )
        shoot(
            chromium,
            f"{base}/#/models/{args.model}?{ML_VIEW_QUERY}",
            args.out / "registry.png",
            "1600,700",
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
