"""The artifact store: where published steps live, atomic publishing, and its locks.

Layout under the root::

    <step>/<key>/step.json          a published step (the rename that made it was atomic)
    <step>/<key>/<output>/...       its output artifacts, each with artifact.json
    <step>/.tmp-<key>-<pid>/        a step being written; never read, swept once its writer
                                    is gone
    .work/<step>/<key>/             scratch that survives a crash (checkpoints)
    runs/<run>/config.yaml          the resolved config of every run
    .locks/<step>.<key>             flock: held by the run computing that step
    .lock                           flock: shared by every run in progress; exclusive for
                                    work on the whole store

Runs on one store go at once (``convflow sweep --max-parallel N``, a run by hand beside a
scheduled one): each holds ``.lock`` shared, and, while it computes and publishes a step,
that step key's lock exclusively (:meth:`ArtifactStore.claim`). A second run that needs the
same key waits for it (``--wait``) and then finds it published, a cache hit, or fails at once
naming the holder's pid; so no key is ever computed twice at once. Every lock is an flock,
which the kernel frees when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convflow.components.base import ARTIFACT_FILE, Artifact
from convflow.pipelines.cache import fingerprint_dir

STEP_FILE = "step.json"


class StoreLockedError(Exception):
    """Another run holds the store, or computes a step this run needs."""

    ran_before = True  # the runner sets False when this run had not run a step yet


class ArtifactStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self._claims: dict[tuple[str, str], _Lock] = {}  # (step, key) -> its held key lock

    # -- paths ---------------------------------------------------------------
    def step_dir(self, step: str, key: str) -> Path:
        return self.root / step / key[:16]

    def work_dir(self, step: str, key: str) -> Path:
        return self.root / ".work" / step / key[:16]

    def is_published(self, step: str, key: str) -> bool:
        path = self.step_dir(step, key) / STEP_FILE
        # Directories are named by a key prefix; the record holds the whole key.
        return path.is_file() and json.loads(path.read_text()).get("key") == key

    def record(self, step: str, key: str) -> dict[str, Any]:
        return json.loads((self.step_dir(step, key) / STEP_FILE).read_text())

    def outputs(self, step: str, key: str) -> dict[str, Artifact]:
        d = self.step_dir(step, key)
        return {name: Artifact.load(d / name) for name in self.record(step, key)["outputs"]}

    # -- writing -------------------------------------------------------------
    def sweep(self) -> int:
        """Deletes what crashed runs left half-written, never what a live run is writing.

        A writer holds its step key's lock for as long as its ``<step>/.tmp-<key>-<pid>`` or
        ``.old-<key>-<pid>`` directory exists (:meth:`claim`), so such a directory is stale
        exactly when that lock is free. The pid in the name is not consulted: on a store
        shared by containers or hosts it may belong to another PID namespace. The directory is
        deleted while the lock is held, so no writer can begin on that key meanwhile.

        Returns:
            How many directories were deleted.
        """
        count = 0
        for path in [*self.root.glob("*/.tmp-*-*"), *self.root.glob("*/.old-*-*")]:
            key16 = path.name.split("-", 1)[1].rpartition("-")[0]
            try:
                with _Lock(self._key_lock(path.parent.name, key16), 0.0, what=""):
                    shutil.rmtree(path, ignore_errors=True)
                    count += 1
            except StoreLockedError:
                continue  # its writer is alive
        return count

    def claim(self, step: str, key: str, timeout: float = 0.0, force: bool = False) -> None:
        """Takes the lock of ``step`` at ``key`` unless the step is published (and not forced).

        Call before computing a step. A step that another run is computing is waited for up
        to ``timeout`` seconds; if that run published it meanwhile, no lock is kept and the
        caller finds a cache hit. The lock is released by :meth:`publish`, else when the run
        lock (:meth:`lock`) is released, else by the kernel when this process dies.

        Raises:
            StoreLockedError: another live run still holds the key after ``timeout`` s; the
                message names its pid.
        """
        if (step, key) in self._claims or (not force and self.is_published(step, key)):
            return
        what = f"computes {step} at {key[:12]} in"
        held = _Lock(self._key_lock(step, key[:16]), timeout, what).__enter__()
        try:
            published = not force and self.is_published(step, key)  # its holder finished it
        except BaseException:  # held by nobody's record: a later claim would wait on itself
            held.__exit__()
            raise
        if published:
            held.__exit__()
        else:
            self._claims[(step, key)] = held

    def _key_lock(self, step: str, key16: str) -> Path:
        # Beside the steps, not in a step's folder, which holds only its published keys.
        return self.root / ".locks" / f"{step}.{key16}"

    def release(self, step: str | None = None, key: str | None = None) -> None:
        """Releases the lock of ``step`` at ``key`` (no arguments: every one this run holds)."""
        pairs = [(step, key)] if step else list(self._claims)
        for pair in pairs:
            held = self._claims.pop(pair, None)
            if held is not None:
                held.__exit__()

    def begin(self, step: str, key: str) -> Path:
        """A fresh temporary directory to write the step's outputs into."""
        parent = self.root / step
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".tmp-{key[:16]}-{os.getpid()}"
        if tmp.exists():  # left by an earlier run of this process (or of a dead one, same pid)
            shutil.rmtree(tmp)
        tmp.mkdir()
        return tmp

    def publish(
        self, step: str, key: str, tmp: Path, outputs: dict[str, Any], record: dict[str, Any]
    ) -> dict[str, Artifact]:
        """Writes artifact.json files and step.json into ``tmp``, then renames it into place.

        Args:
            outputs: output name -> OutputArtifact the component filled.
            record: facts about the run (component, params, inputs, metrics, duration).
        """
        for name, out in outputs.items():
            # Properties (class names, shapes, preprocessing settings) are content too.
            props = json.dumps(out.properties, sort_keys=True, default=str)
            files = fingerprint_dir(tmp / name)
            meta = {
                "type": out.type,
                "producer": f"{step}@{key[:16]}",
                "fingerprint": hashlib.sha256(f"{files}\0{props}".encode()).hexdigest(),
                "properties": out.properties,
            }
            _write_json(tmp / name / ARTIFACT_FILE, meta)
        _write_json(tmp / STEP_FILE, {**record, "key": key, "outputs": sorted(outputs)})
        _fsync_tree(tmp)
        final = self.step_dir(step, key)
        if final.exists():  # --force over a published step: swap, then drop the old one
            old = final.with_name(f".old-{key[:16]}-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        _fsync_dir(final.parent)
        shutil.rmtree(self.work_dir(step, key), ignore_errors=True)
        self.release(step, key)
        return self.outputs(step, key)

    # -- locking -------------------------------------------------------------
    def lock(self, timeout: float = 0.0, shared: bool = False) -> _Lock:
        """The store-wide lock: ``shared`` for a run (many at once), else exclusive.

        Leaving it also releases every step lock this store object still holds (a failed or
        interrupted step's).

        Raises:
            StoreLockedError: (on entering) the lock is not free after ``timeout`` seconds.
        """
        return _Lock(self.root / ".lock", timeout, shared=shared, on_exit=self.release)


class _Lock:
    """An flock on ``path``; the kernel drops it if the holder dies (even by SIGKILL).

    An exclusive holder writes ``pid N since HH:MM:SS`` into the file, for the message of
    whoever finds it taken.
    """

    def __init__(
        self,
        path: Path,
        timeout: float,
        what: str = "holds",
        shared: bool = False,
        on_exit: Callable[[], None] | None = None,
    ):
        self.path, self.timeout, self.what, self.fd = path, timeout, what, None
        self.mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self.on_exit = on_exit

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire()
        except BaseException:  # not free in time, another error, or Ctrl-C while waiting
            os.close(self.fd)
            raise
        if self.mode == fcntl.LOCK_EX:
            os.ftruncate(self.fd, 0)
            stamp = f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}"
            os.pwrite(self.fd, stamp.encode(), 0)
        return self

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, self.mode | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(self.fd, 200, 0).decode(errors="replace").strip()
                    raise StoreLockedError(
                        f"another convflow run ({holder or 'unknown pid'}) {self.what} "
                        f"{self.root()}; "
                        "wait for it, pass --wait SECONDS, or use another --artifact-root"
                    ) from None
                time.sleep(0.5)

    def root(self) -> Path:
        # .lock sits in the store's root; a step key's lock in .locks/.
        return self.path.parent if self.path.name == ".lock" else self.path.parent.parent

    def __exit__(self, *exc) -> None:
        if self.on_exit is not None:
            self.on_exit()
        if self.mode == fcntl.LOCK_EX:
            os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    # Data must be on disk before the rename makes it visible, or a power cut could publish
    # a directory of empty files.
    for p in root.rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)
