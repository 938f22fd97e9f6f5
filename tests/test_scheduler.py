"""`convflow schedule` as a user runs it: a real process with a per-second cron schedule,
real child runs of a small real pipeline, SIGTERM mid-run, catch-up and data triggers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import fashion_mnist_slice
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient

NAME = "sched_small"
EVERY_2_S = "* * * * * */2"  # croniter: a 6th field is seconds


def _write_config(path: Path, store: Path, ingest: str) -> Path:
    path.write_text(
        f"pipeline: {{name: {NAME}, artifact_root: {store}}}\n"
        f"ingest: {ingest}\n"
        "train: {epochs: 1, batch_size: 64, model_kwargs: {filters: [4, 8]}}\n"
        "evaluate: {min_accuracy: 0.1}\n"
    )
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A small config whose store already holds one whole run (so scheduled runs are quick)."""
    root = tmp_path_factory.mktemp("sched")
    cfg = _write_config(root / "c.yaml", root / "store", "{max_examples: 300}")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["run", str(cfg), "--tracking-uri", uri, "--quiet"]) == 0
    return cfg, uri, root / "store"


def _schedule(cfg: Path, uri: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "convflow.pipelines.cli", "schedule", str(cfg)]
    return subprocess.Popen(
        [*cmd, "--tracking-uri", uri, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _log(path: Path) -> list[dict[str, str]]:
    """The scheduler's plain log, one dict per line."""
    pattern = re.compile(r"(\w+)=('[^']*'|\S+)")
    lines = path.read_text().splitlines() if path.exists() else []
    return [{k: v.strip("'") for k, v in pattern.findall(line)} for line in lines]


def _parents(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(NAME)
    return client.search_runs([exp.experiment_id], filter_string="tags.trigger != ''")


def _published_ok(store: Path) -> None:
    """Every published step directory is whole: its step.json holds the key it is named by."""
    for record in store.glob("*/*/step.json"):
        assert json.loads(record.read_text())["key"].startswith(record.parent.name)
    for step_dir in store.glob("*/*"):
        if step_dir.is_dir() and not step_dir.name.startswith(".") and step_dir.parent.name in (
            "ingest", "preprocess", "validate_data", "train", "evaluate", "register"
        ):  # fmt: skip
            assert (step_dir / "step.json").is_file(), f"half-published {step_dir}"


@pytest.mark.slow
def test_runs_start_at_ticks_and_an_overlapping_tick_is_skipped(pipeline, tmp_path):
    cfg, uri, _ = pipeline
    log = tmp_path / "schedule.log"
    proc = _schedule(cfg, uri, "--cron", EVERY_2_S, "--max-runs", "2", "--log", str(log))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    lines = _log(log)
    ran = [x for x in lines if x["status"] != "skipped"]
    assert [x["status"] for x in ran] == ["ok", "ok"], out[-3000:]
    # A run takes longer than 2 s, so ticks came while it went: skipped, not stacked.
    skipped = [x for x in lines if x["status"] == "skipped"]
    assert skipped and all("still going" in x["detail"] for x in skipped)
    for x in ran:  # started at a tick (an even second)
        assert datetime.fromisoformat(x["start"]).second % 2 == 0
    by_id = {r.info.run_id: r for r in _parents(uri)}
    for x in ran:
        tags = by_id[x["mlflow_run_id"]].data.tags
        assert (tags["trigger"], tags["schedule"]) == ("schedule", EVERY_2_S)
        assert by_id[x["mlflow_run_id"]].info.status == "FINISHED"


@pytest.mark.slow
def test_sigterm_mid_run_stops_it_with_nothing_half_published(pipeline, tmp_path):
    cfg, uri, store = pipeline
    log = tmp_path / "schedule.log"
    trained = set(store.glob("train/*/step.json"))
    # A new train key: the run re-trains, and is stopped in the middle of it.
    proc = _schedule(
        cfg, uri, "--cron", EVERY_2_S, "--grace", "1", "--log", str(log),
        "--set", "train.epochs=200",
    )  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("▶ train: running"):
            break
    time.sleep(3)  # well inside the step
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 0, out[-3000:]
    assert "grace period over: interrupting run" in out
    stopped = [x for x in _log(log) if x["status"] != "skipped"]
    assert [x["status"] for x in stopped] == ["stopped"], out[-3000:]
    assert set(store.glob("train/*/step.json")) == trained  # the stopped training: nowhere
    _published_ok(store)
    client = MlflowClient(uri)
    parent = client.get_run(stopped[0]["mlflow_run_id"])
    assert parent.info.status in ("FAILED", "KILLED")
    train = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and "
        "attributes.run_name = 'train'",
    )
    assert [r.info.status for r in train] == ["KILLED"]


@pytest.mark.slow
def test_catchup_latest_runs_once_for_a_tick_missed_while_down(pipeline, tmp_path):
    cfg, uri, store = pipeline
    log = tmp_path / "schedule.log"
    state = store / f".schedule-{NAME}.json"
    state.write_text(json.dumps({"last_tick": "2020-01-01T02:00:00+00:00"}))
    proc = _schedule(
        cfg, uri, "--cron", "0 2 * * *", "--catchup", "latest", "--max-runs", "1",
        "--log", str(log),
    )  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "catch-up: tick" in out
    (line,) = _log(log)
    assert line["status"] == "ok"
    tags = MlflowClient(uri).get_run(line["mlflow_run_id"]).data.tags
    assert tags["schedule.catchup"] == "latest"
    assert json.loads(state.read_text())["last_tick"] > "2020-01-01"


def _png_folder(root: Path, n: int) -> Path:
    from PIL import Image

    images, labels = fashion_mnist_slice("train", n)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / f"class_{label % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / f"class_{label % 2}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_file_added_to_the_image_folder_triggers_a_run(tmp_path):
    from convflow.components.ingest.fingerprint import source_fingerprint
    from convflow.pipelines.cli import load_config

    folder = _png_folder(tmp_path / "images", 40)
    cfg = _write_config(
        tmp_path / "c.yaml", tmp_path / "store", f"{{source: folder, folder: {folder}}}"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ingest = load_config(str(cfg), [])[0]["ingest"]
    before = source_fingerprint(ingest)
    log = tmp_path / "schedule.log"
    proc = _schedule(  # with a cron schedule too (one that never ticks during the test)
        cfg, uri, "--cron", "0 0 1 1 *", "--on-data-change", "--poll", "1", "--max-runs", "1",
        "--log", str(log),
    )  # fmt: skip
    state = tmp_path / "store" / f".schedule-{NAME}.json"
    deadline = time.monotonic() + 120
    while "data_fingerprint" not in (state.read_text() if state.exists() else ""):
        # the first poll notes the data as it is: no run for it
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)
    assert _log(log) == []
    image = np.asarray(fashion_mnist_slice("test", 1)[0][0])
    from PIL import Image

    Image.fromarray(image).save(folder / "class_0" / "new.png")
    after = source_fingerprint(ingest)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    (line,) = _log(log)
    assert (line["status"], line["trigger"]) == ("ok", "data"), out[-3000:]
    tags = MlflowClient(uri).get_run(line["mlflow_run_id"]).data.tags
    assert tags["trigger"] == "data"
    assert (tags["data.old_fingerprint"], tags["data.new_fingerprint"]) == (before, after)
    assert before != after
    assert os.path.exists(tmp_path / "store" / "ingest")


@pytest.mark.slow
def test_a_second_scheduler_for_the_same_pipeline_is_refused(tmp_path):
    import fcntl

    cfg = _write_config(tmp_path / "c.yaml", tmp_path / "store", "{max_examples: 300}")
    lock = tmp_path / "store" / f".schedule-{NAME}.lock"
    lock.parent.mkdir()
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running scheduler holds it
        proc = _schedule(cfg, f"sqlite:///{tmp_path / 'm.db'}", "--cron", "0 2 * * *")
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert out.strip().splitlines()[-1] == (
        f"error: another `convflow schedule` runs this pipeline on this store ({lock}); "
        "stop it first"
    )
