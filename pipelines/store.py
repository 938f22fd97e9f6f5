"""The artifact store: where published steps live, atomic publishing, and the run lock.

Layout under the root::

    <step>/<key>/step.json          a published step (the rename that made it was atomic)
    <step>/<key>/<output>/...       its output artifacts, each with artifact.json
    <step>/.tmp-<key>-<pid>/        a step being written; never read, swept on the next run
    .work/<step>/<key>/             scratch that survives a crash (checkpoints)
    runs/<run>/config.yaml          the resolved config of every run
    .lock                           held (flock) by the run in progress
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from convflow.components.base import ARTIFACT_FILE, Artifact
from convflow.pipelines.cache import fingerprint_dir

STEP_FILE = "step.json"


class StoreLockedError(Exception):
    """Another run holds the store."""


class ArtifactStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()

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
        """Deletes what crashed runs left half-written; only call while holding the lock."""
        stale = [*self.root.glob("*/.tmp-*"), *self.root.glob("*/.old-*")]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)

    def begin(self, step: str, key: str) -> Path:
        """A fresh temporary directory to write the step's outputs into."""
        parent = self.root / step
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".tmp-{key[:16]}-{os.getpid()}"
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
        return self.outputs(step, key)

    # -- locking -------------------------------------------------------------
    def lock(self, timeout: float = 0.0) -> _Lock:
        return _Lock(self.root / ".lock", timeout)


class _Lock:
    """An exclusive flock on the store; the kernel drops it if the holder dies (even SIGKILL)."""

    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(self.fd, 200, 0).decode(errors="replace").strip()
                    os.close(self.fd)
                    raise StoreLockedError(
                        f"another convflow run ({holder or 'unknown pid'}) holds "
                        f"{self.path.parent}; "
                        "wait for it, pass --wait SECONDS, or use another --artifact-root"
                    ) from None
                time.sleep(0.5)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
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
