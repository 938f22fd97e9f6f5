"""Shared fixtures: real MLflow stores (sqlite, and a real server on loopback) and data."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _mlflow_state_kept():
    """Puts MLflow's process-wide settings back as they were on exit.

    ``mlflow.set_tracking_uri``/``set_registry_uri`` also write MLFLOW_TRACKING_URI and
    MLFLOW_REGISTRY_URI into ``os.environ``, and a run against a server sets the
    MLFLOW_HTTP_REQUEST_* retry settings: a test that runs a pipeline in-process would
    otherwise steer every later test's clients and subprocesses (a consumer reading the
    registry of a sqlite file long gone, a 5 s retry budget overridden by a 300 s one).
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    uris = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("MLFLOW_") and k not in saved]:
            del os.environ[k]
        os.environ.update(saved)
        tracking_utils._tracking_uri, registry_utils._registry_uri = uris


@pytest.fixture(autouse=True, scope="module")
def module_keeps_mlflow_state():
    """A module-scoped fixture that connects in-process (test_consumers, test_scheduler) is
    set up inside this one (autouse fixtures of a scope come first), so its settings end with
    its module."""
    with _mlflow_state_kept():
        yield


@pytest.fixture(autouse=True)
def test_keeps_mlflow_state():
    """Each test leaves MLflow's settings as it found them."""
    with _mlflow_state_kept():
        yield


@pytest.fixture
def sqlite_uri(tmp_path) -> str:
    """A fresh embedded MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def start_mlflow_server(
    data: Path, port: int, log: Path, backend: str | None = None, wait_s: float = 300
) -> subprocess.Popen:
    """``mlflow/server.sh`` over ``data`` on ``127.0.0.1:port``, returned once /health answers.

    The server runs in its own session, so ``os.killpg(proc.pid, ...)`` stops its workers
    too. ``backend`` is a database URI (MLFLOW_BACKEND; default: sqlite under ``data``).

    Raises:
        RuntimeError: the server exited or did not answer within ``wait_s`` seconds (a loaded
            shared machine takes minutes); the message ends with the server's log.
    """
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_PORT": str(port),
        "MLFLOW_DATA": str(data),
    }
    if backend:
        env["MLFLOW_BACKEND"] = backend
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO / "mlflow" / "server.sh"), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_mlflow_server(proc)
            raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)


def stop_mlflow_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stops the server and its gunicorn/uvicorn workers (SIGKILL after 20 s)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on a free loopback port, for the whole session."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    proc = start_mlflow_server(root, port, root / "server.log")
    yield f"http://127.0.0.1:{port}"
    stop_mlflow_server(proc)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Writes an unsigned-byte IDX file (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fashion_mnist_slice(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` real Fashion-MNIST images (N×28×28 uint8) and labels of a split."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FASHION_MNIST / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_MNIST / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images[:n].copy(), labels[:n].astype(np.int64)


@pytest.fixture
def small_idx(tmp_path) -> dict[str, str]:
    """IDX files holding 600 train / 200 test real Fashion-MNIST images."""
    out = {}
    for split, n in (("train", 600), ("test", 200)):
        images, labels = fashion_mnist_slice(split, n)
        out[f"{split}_images"] = str(write_idx(tmp_path / f"{split}-images.gz", images))
        out[f"{split}_labels"] = str(write_idx(tmp_path / f"{split}-labels.gz", labels))
    return out


@pytest.fixture(scope="session")
def fakeflow(tmp_path_factory):
    """A copy of tests/fakeflow on sys.path, so tests may edit its sources."""
    root = tmp_path_factory.mktemp("fakeflow_pkg")
    shutil.copytree(REPO / "tests" / "fakeflow", root / "fakeflow")
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
