"""Real services on loopback for the scaling tests: a Dask cluster and a PostgreSQL server.

Each is started by the test that needs it and stopped after, so no test assumes a running
service. Processes run in their own session and are stopped by process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from conftest import free_port

PYTHON_BIN = Path(sys.executable).parent
DB = "mlflow"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _start(args: list[str], log: Path, env: dict | None = None, **kw) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env or os.environ.copy(),
            start_new_session=True,
            **kw,
        )


@contextlib.contextmanager
def dask_cluster(root: Path, workers: int = 2) -> Iterator[str]:
    """``dask scheduler`` + ``workers`` × ``dask worker`` (1 thread each) on 127.0.0.1.

    Yields:
        The scheduler address, ``tcp://127.0.0.1:PORT``.
    """
    from distributed import Client

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    py_m = [sys.executable, "-m"]
    procs = [
        _start(
            [*py_m, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
             str(port), "--no-dashboard"],
            root / "scheduler.log",
        )
    ]  # fmt: skip
    try:
        for i in range(workers):
            procs.append(
                _start(
                    [*py_m, "distributed.cli.dask_worker", address, "--nthreads", "1",
                     "--no-dashboard", "--name", f"w{i}", "--local-directory",
                     str(root / f"w{i}")],
                    root / f"worker-{i}.log",
                )
            )  # fmt: skip
        with Client(address, timeout=120) as client:
            client.wait_for_workers(workers, timeout=180)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: PATH first, then Debian's versioned folders."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise FileNotFoundError(f"{name} not found: apt-get install postgresql")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (initdb in a temporary folder) on a free loopback port.

    PostgreSQL refuses to run as root, so as root the cluster belongs to ``postgres`` (the
    user Debian's package creates), else to the current user. Its folder is a fresh one in
    the system's temp dir, since pytest's (mode 700, root's) cannot be entered by ``postgres``.

    Yields:
        A database URL, ``postgresql://convflow@127.0.0.1:PORT/mlflow``.
    """
    root = Path(tempfile.mkdtemp(prefix="convflow-pg-"))
    data, sock = root / "pgdata", root / "sock"
    sock.mkdir()
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        for path in (root, sock):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, env=env, cwd=root)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stdout}{done.stderr}")

    ctl = postgres_bin("pg_ctl")
    try:
        run(postgres_bin("initdb"), "-D", str(data), "-U", "convflow", "--auth=trust", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {port} -k {sock} -c max_connections=200 -c fsync=off"
        run(ctl, "-D", str(data), "-l", str(root / "postgres.log"), "-o", options, "-w", "start")
        try:
            run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "convflow", DB)
            yield f"postgresql://convflow@127.0.0.1:{port}/{DB}"
        finally:
            run(ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(root: Path, backend: str) -> Iterator[str]:
    """``mlflow/server.sh`` with ``MLFLOW_BACKEND=backend`` on a free loopback port.

    Yields:
        The tracking URI, ``http://127.0.0.1:PORT``.
    """
    from conftest import start_mlflow_server, stop_mlflow_server

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_mlflow_server(root, port, root / "log", backend=backend)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_mlflow_server(proc)
