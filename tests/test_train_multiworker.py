"""``train.strategy: multi_worker_mirrored``: two worker processes on loopback train one model.

Each test runs the real pipeline through the CLI (ingest -> preprocess -> train) on a slice
of Fashion-MNIST, in a subprocess, so that the workers the train step launches are real
processes with their own TF_CONFIG.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


def write_config(root: Path, epochs: int) -> Path:
    cfg = root / "mw.yaml"
    cfg.write_text(
        f"pipeline: {{name: multiworker, artifact_root: {root / 'store'}}}\n"
        "ingest: {max_examples: 1500}\n"
        f"train: {{epochs: {epochs}, batch_size: 64, model_kwargs: {{filters: [8, 16]}},\n"
        "        strategy: multi_worker_mirrored, workers: 2, precision: float32}\n"
    )
    return cfg


def start(cfg: Path, root: Path) -> subprocess.Popen:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return subprocess.Popen(
        [sys.executable, "-m", "convflow.pipelines.cli", "run", str(cfg), "--to", "train",
         "--tracking-uri", uri],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip


def train_runs(root: Path):
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("multiworker")
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.run_name = 'train'")
    return client, sorted(runs, key=lambda r: r.info.start_time)


def published_models(root: Path) -> list[Path]:
    return sorted((root / "store" / "train").glob("*/model/artifact.json"))


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_publishes(tmp_path):
    proc = start(write_config(tmp_path, epochs=2), tmp_path)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert "train: epoch 2/2" in out

    (model,) = published_models(tmp_path)
    props = json.loads(model.read_text())["properties"]
    assert props["strategy"] == "multi_worker_mirrored" and props["epochs_run"] == 2
    assert (model.parent / "model.keras").is_file()
    assert not list((tmp_path / "store").rglob("scratch-*"))  # non-chief scratch is gone

    client, (run,) = train_runs(tmp_path)  # one step run, one set of per-epoch metrics
    history = client.get_metric_history(run.info.run_id, "loss")
    # One point per epoch, then the final value on the last one (as a single process logs).
    assert sorted(m.step for m in history) == [1, 2, 2]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"training_curves.png"}


@pytest.mark.slow
def test_a_killed_worker_fails_the_step_and_the_rerun_resumes_from_the_chief(tmp_path):
    cfg = write_config(tmp_path, epochs=4)
    proc = start(cfg, tmp_path)
    deadline = time.monotonic() + 600
    work = tmp_path / "store" / ".work" / "train"
    while time.monotonic() < deadline and proc.poll() is None:
        states = list(work.glob("*/ckpt/state.json"))
        if states and json.loads(states[0].read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    (run_dir,) = work.glob("*/multiworker")
    pid = json.loads((run_dir / "workers.json").read_text())["pids"][1]
    os.kill(pid, signal.SIGKILL)  # worker 1, in the middle of epoch 2
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    (line,) = [x for x in out.splitlines() if x.startswith("error: ")]
    assert f"error: train: worker 1 of 2 (pid {pid}) was killed by SIGKILL during epoch" in line
    assert "run the same command again to resume from it" in line
    done = json.loads(next(work.glob("*/ckpt/state.json")).read_text())["epochs_done"]
    assert 1 <= done < 4
    assert not published_models(tmp_path) and not list(run_dir.glob("scratch-*"))

    again = start(cfg, tmp_path)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:]
    (model,) = published_models(tmp_path)
    props = json.loads(model.read_text())["properties"]
    assert props["resumed_from_epoch"] == done and props["epochs_run"] == 4
    client, runs = train_runs(tmp_path)
    history = client.get_metric_history(runs[-1].info.run_id, "loss")
    assert sorted(m.step for m in history) == [*range(done + 1, 5), 4]  # only the new epochs
