"""The artifact store with several runs at once: per-key locks, and the temp-dir sweep.

Each other run is a real process (``python -c``) holding real flocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from convflow.pipelines.store import ArtifactStore, StoreLockedError

KEY, OTHER, THIRD = "a" * 64, "b" * 64, "c" * 64

HOLD = """
import sys, time
from convflow.components.base import OutputArtifact
from convflow.pipelines.store import ArtifactStore
store = ArtifactStore(sys.argv[1])
store.claim("train", sys.argv[2])
tmp = store.begin("train", sys.argv[2])
print(tmp, flush=True)
if sys.argv[3] == "publish":
    sys.stdin.readline()
    time.sleep(0.5)  # the parent is waiting on the key by now (if not, it finds a hit at once)
    (tmp / "model").mkdir()
    out = OutputArtifact(str(tmp / "model"), "Model")
    store.publish("train", sys.argv[2], tmp, {"model": out}, {})
else:
    sys.stdin.readline()
"""


def _holder(root, key: str, then: str = "hold") -> tuple[subprocess.Popen, str]:
    """A process that claims ``train`` at ``key`` and begins writing it; (process, its tmp)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), key, then],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def _finish(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0


def test_a_key_another_run_computes_fails_at_once_naming_its_pid(tmp_path):
    store = ArtifactStore(tmp_path)
    proc, _ = _holder(tmp_path, KEY)
    try:
        with store.lock(shared=True):  # the holder's run and this one share the store
            with pytest.raises(StoreLockedError) as err:
                store.claim("train", KEY)
            assert f"another convflow run (pid {proc.pid} since " in str(err.value)
            assert f"computes train at {KEY[:12]} in {tmp_path}; " in str(err.value)
            assert "--wait SECONDS" in str(err.value)
            store.claim("train", OTHER)  # another key: at once
            assert ("train", OTHER) in store._claims
        assert not store._claims  # leaving the run lock releases its keys
    finally:
        _finish(proc)


def test_a_waiting_run_finds_the_holders_step_published_and_keeps_no_lock(tmp_path):
    store = ArtifactStore(tmp_path)
    proc, _ = _holder(tmp_path, KEY, then="publish")
    with pytest.raises(StoreLockedError):
        store.claim("train", KEY)  # held, not published yet
    proc.stdin.write("go\n")
    proc.stdin.flush()
    store.claim("train", KEY, timeout=60)  # returns once the holder published it
    assert store.is_published("train", KEY)
    assert not store._claims  # a cache hit: nothing to compute, no lock kept
    _finish(proc)
    store.claim("train", KEY, timeout=0, force=True)  # --force recomputes: takes the lock
    assert ("train", KEY) in store._claims


def test_sigkill_frees_the_key_lock(tmp_path):
    proc, _ = _holder(tmp_path, KEY)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ArtifactStore(tmp_path)
    store.claim("train", KEY)
    assert ("train", KEY) in store._claims


def test_sweep_keeps_a_live_runs_temp_dir_and_removes_a_dead_ones(tmp_path):
    store = ArtifactStore(tmp_path)
    proc, live = _holder(tmp_path, KEY)
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        dead_pid = int(dead.stdout)
        crashed = tmp_path / "train" / f".tmp-{OTHER[:16]}-{dead_pid}"
        swapped = tmp_path / "train" / f".old-{OTHER[:16]}-{dead_pid}"
        # A live pid that does not hold the key (a crashed run's pid, reused since).
        reused = tmp_path / "train" / f".tmp-{THIRD[:16]}-{proc.pid}"
        # Left under the key a live run computes: kept until that key is free (pids in the
        # name are not trusted: they may be another container's).
        waits = tmp_path / "train" / f".tmp-{KEY[:16]}-{dead_pid}"
        for d in (crashed, swapped, reused, waits):
            (d / "model").mkdir(parents=True)
        assert store.sweep() == 3
        assert os.path.isdir(live) and os.path.basename(live) == f".tmp-{KEY[:16]}-{proc.pid}"
        assert not crashed.exists() and not swapped.exists() and not reused.exists()
        assert waits.exists()
    finally:
        _finish(proc)
    assert store.sweep() == 2  # the holder is gone: its own and the older leftover
    assert not os.path.exists(live) and not waits.exists()


def test_runs_share_the_store_lock_and_an_exclusive_holder_excludes_them(tmp_path):
    a, b, c = (ArtifactStore(tmp_path) for _ in range(3))
    with a.lock(shared=True), b.lock(shared=True), pytest.raises(StoreLockedError, match="holds"):
        c.lock().__enter__()
    with a.lock(), pytest.raises(StoreLockedError, match=r"\(pid \d+ since"):
        b.lock(shared=True).__enter__()
