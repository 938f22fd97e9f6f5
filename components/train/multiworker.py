"""``train.strategy: multi_worker_mirrored``: N worker processes train one model.

The train step's own process launches ``train.workers`` processes of
:mod:`convflow.components.train.worker` on loopback ports, each with its ``TF_CONFIG``
(``tf.distribute.MultiWorkerMirroredStrategy`` must be created before a process runs any other
TF op, and the step's process has already run TF). Worker 0 is the chief:

- only the chief writes checkpoints (in the step's ``work_dir/ckpt``, where a single-process
  run keeps them too), the per-epoch log this process forwards to MLflow, and the final model
  this process publishes with the plots; the other workers checkpoint into their own scratch
  (TF's pattern: every worker saves, so collective reads match) and delete it;
- every worker resumes from the chief's last checkpoint, so a re-run after a failure goes on
  from there;
- when any worker dies, the others are stopped at once (they would wait on its all-reduce)
  and the step fails with one line naming the worker and the checkpoint to resume from.

Run directory ``work_dir/multiworker/``: ``job.pkl`` (what to train), ``workers.json`` (pids,
ports), ``worker-<i>.log``, ``epochs.jsonl`` (the chief's per-epoch logs), ``result.json`` and
``final.keras`` (the chief's outcome).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from convflow.components.base import ComponentError, Context

RUN_DIR = "multiworker"
JOB_FILE = "job.pkl"
WORKERS_FILE = "workers.json"
EPOCHS_FILE = "epochs.jsonl"
RESULT_FILE = "result.json"
FINAL_MODEL = "final.keras"
ERROR_FILE = "error-{index}.txt"
CKPT_DIR = "ckpt"
STATE_FILE = "state.json"  # checkpoint.STATE, without importing keras here


@dataclass
class ChiefHistory:
    """The chief's EpochCheckpoint outcome, as the train component's tail reads it."""

    history: dict
    stopped: bool
    best_epoch: int | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tf_config(ports: list[int], index: int) -> str:
    """The TF_CONFIG of worker ``index`` in a loopback cluster."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _launch(run_dir: Path, ports: list[int], index: int) -> subprocess.Popen:
    env = {**os.environ, "TF_CONFIG": tf_config(ports, index)}
    cmd = [sys.executable, "-m", "convflow.components.train.worker", str(run_dir / JOB_FILE)]
    with open(run_dir / f"worker-{index}.log", "w") as log:
        return subprocess.Popen(
            [*cmd, str(index)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # stopped as a group, with anything it started
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def epochs_done(work_dir: Path) -> int:
    """Finished epochs in the chief's last checkpoint (0 when there is none)."""
    path = work_dir / CKPT_DIR / STATE_FILE
    return json.loads(path.read_text())["epochs_done"] if path.exists() else 0


def _forward(path: Path, seen: int, on_epoch) -> int:
    """Hands the chief's new per-epoch logs to ``on_epoch``; returns how many were handled."""
    if not path.exists():
        return seen
    text = path.read_text()
    lines = text.splitlines()
    complete = lines if text.endswith("\n") else lines[:-1]  # the last may be half-written
    for line in complete[seen:]:
        row = json.loads(line)
        on_epoch(row["epoch"], row["logs"])
    return len(complete)


def _death(run_dir: Path, work_dir: Path, index: int, proc, epochs: int, n: int) -> str:
    error = run_dir / ERROR_FILE.format(index=index)
    if error.exists():  # a ComponentError inside the worker: the user's to fix
        return error.read_text().strip()
    code = proc.returncode
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    done = epochs_done(work_dir)
    return (
        f"worker {index} of {n} (pid {proc.pid}) {how} during epoch "
        f"{min(done + 1, epochs)}/{epochs}; the other workers were stopped. The chief's last "
        f"checkpoint holds {done} epoch(s) ({work_dir / CKPT_DIR}): run the same command again "
        f"to resume from it (log: {run_dir / f'worker-{index}.log'})"
    )


def _wait(procs, run_dir: Path, work_dir: Path, p, on_epoch) -> None:
    seen = 0
    while True:
        seen = _forward(run_dir / EPOCHS_FILE, seen, on_epoch)
        codes = [proc.poll() for proc in procs]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            for proc in procs:
                _stop(proc)
            raise ComponentError(
                _death(run_dir, work_dir, failed[0], procs[failed[0]], p.epochs, len(procs))
            )
        if all(code == 0 for code in codes):
            _forward(run_dir / EPOCHS_FILE, seen, on_epoch)
            return
        time.sleep(0.2)


def fit_on_workers(ctx: Context, precision: str, on_epoch):
    """Trains on ``train.workers`` local worker processes; returns the chief's outcome.

    Args:
        ctx: the train step's context (``ctx.work_dir/ckpt`` holds the chief's checkpoints).
        precision: the resolved dtype policy.
        on_epoch: ``on_epoch(epoch, logs)`` for each epoch the chief finished.

    Returns:
        A :class:`convflow.components.train.executor.Fitted` holding the chief's model.

    Raises:
        ComponentError: a worker died or failed (the message says which and how to resume).
    """
    import keras

    # The workers run this module; the executor imports this one (not the reverse at load).
    from convflow.components.train import worker  # noqa: F401 - part of the step's cache key
    from convflow.components.train.executor import Fitted, epoch_line

    p, work_dir = ctx.params, Path(ctx.work_dir)

    def forward(epoch: int, logs: dict) -> None:
        on_epoch(epoch, logs)
        if ctx.show_progress:  # the workers draw no progress bars: one line per epoch instead
            print(epoch_line(epoch + 1, p.epochs, logs), flush=True)

    run_dir = work_dir / RUN_DIR
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.iterdir():  # a failed attempt's logs; the chief's ckpt/ is kept
        if stale.is_file():
            stale.unlink()
    job = {
        "params": p,
        "examples": ctx.inputs["examples"],
        "task": ctx.pipeline.get("task"),
        "precision": precision,
        "work_dir": str(work_dir),
    }
    (run_dir / JOB_FILE).write_bytes(pickle.dumps(job))
    ports = [_free_port() for _ in range(p.workers)]
    procs = [_launch(run_dir, ports, i) for i in range(p.workers)]
    pids = {"pids": [proc.pid for proc in procs], "ports": ports}
    (run_dir / WORKERS_FILE).write_text(json.dumps(pids))
    try:
        _wait(procs, run_dir, work_dir, p, forward)
    finally:
        for proc in procs:
            _stop(proc)
        for scratch in run_dir.glob("scratch-*"):  # a killed worker could not delete its own
            shutil.rmtree(scratch, ignore_errors=True)
    result = json.loads((run_dir / RESULT_FILE).read_text())
    model = keras.saving.load_model(run_dir / FINAL_MODEL)
    chief = ChiefHistory(result["history"], result["stopped"], result["best_epoch"])
    return Fitted(model, chief, result["fit_seconds"], result["restored"])
