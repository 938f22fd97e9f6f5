"""Per-epoch checkpoints that survive SIGKILL, with early stopping state that resumes too.

Layout in the step's work_dir::

    ckpt/epoch-0003.keras    model + optimizer state after 3 finished epochs
    ckpt/best.weights.h5     weights of the best epoch so far (early stopping)
    ckpt/state.json          {"epochs_done": 3, "file": "epoch-0003.keras", history, ...}

Every file is written under a temporary name and renamed into place; state.json is renamed
last and names its model file, so a kill at any moment leaves a consistent pair.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import keras
from convflow.components.base import ComponentError
from convflow.components.train.spec import EarlyStoppingParams

STATE = "state.json"
BEST = "best.weights.h5"


def load_state(directory: Path) -> dict[str, Any] | None:
    """The last finished epoch's state, or None when training starts from scratch."""
    path = directory / STATE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if (directory / state["file"]).exists() else None


def _replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves after every epoch, tracks the monitored metric and stops when it stalls.

    Args:
        directory: where checkpoints go (inside ``ctx.work_dir``).
        early: early-stopping settings (``patience=0`` only tracks, never stops).
        state: a state from :func:`load_state` to continue from, or None.
        on_epoch: called as ``on_epoch(epoch, logs)`` after the checkpoint is on disk.
    """

    def __init__(self, directory: Path, early: EarlyStoppingParams, state=None, on_epoch=None):
        super().__init__()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.early = early
        self.on_epoch = on_epoch
        state = state or {}
        self.history: dict[str, list[float]] = state.get("history", {})
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = state.get("wait", 0)
        self.stopped = state.get("stopped", False)
        self._t0 = 0.0

    @property
    def mode_max(self) -> bool:
        return "loss" not in self.early.monitor

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode_max:
            return value > self.best + self.early.min_delta
        return value < self.best - self.early.min_delta

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["epoch_seconds"] = time.perf_counter() - self._t0
        if self.early.monitor not in logs:
            raise ComponentError(
                f"train.early_stopping.monitor={self.early.monitor!r} is not a training "
                f"metric; available: {', '.join(sorted(logs))}"
            )
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        value = logs[self.early.monitor]
        if math.isfinite(value) and self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.early.patience and self.early.restore_best:
                tmp = self.directory / f"tmp-{BEST}"
                self.model.save_weights(tmp)
                _replace(tmp, self.directory / BEST)
        else:
            self.wait += 1
        if self.early.patience and self.wait >= self.early.patience:
            self.stopped = True
            self.model.stop_training = True
        self._save(epoch + 1)
        if self.on_epoch:
            self.on_epoch(epoch, logs)

    def _save(self, epochs_done: int) -> None:
        name = f"epoch-{epochs_done:04d}.keras"
        tmp = self.directory / f"tmp-{name}"
        self.model.save(tmp)
        _replace(tmp, self.directory / name)
        state = {
            "epochs_done": epochs_done,
            "file": name,
            "history": self.history,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped": self.stopped,
        }
        tmp_state = self.directory / f"tmp-{STATE}"
        tmp_state.write_text(json.dumps(state))
        _replace(tmp_state, self.directory / STATE)
        for old in self.directory.glob("epoch-*.keras"):
            if old.name != name:
                old.unlink()

    def restore_best(self) -> bool:
        """Loads the best epoch's weights when early stopping asked for it."""
        path = self.directory / BEST
        if self.early.patience and self.early.restore_best and path.exists():
            self.model.load_weights(path)
            return True
        return False
