"""The embedded sqlite store: created atomically, repaired when half-made, found from anywhere.

MLflow creates a sqlite store by running some forty schema migrations in place; a kill,
Ctrl-C or SIGTERM in between leaves a half-migrated ``mlflow.db`` that every later run
rejects. Here the database is built under a temporary name beside the final one and
hard-linked into place only when whole (``link`` fails if another process got there first,
so two first runs cannot replace each other's store). A database that is already half-made
(schema behind this MLflow's and no run recorded, so nothing can be lost) is moved aside
and built again; one that holds runs under an older schema gets the upgrade command.

``convflow predict`` finds the store the way a run made it: ``--tracking-uri``, else
``MLFLOW_TRACKING_URI``, else ``convflow_runs/mlflow.db`` in the working directory or the
nearest parent that has one. It never creates a store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

EMBEDDED_DIR = "convflow_runs"
DB_NAME = "mlflow.db"


class StoreBroken(Exception):
    """An embedded store that cannot be used as is; the message says why and what to do."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0]).absolute()


def _head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _state(path: Path) -> tuple[str | None, int | None]:
    """(schema revision or None, number of runs or None) of an existing sqlite file."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as e:
        raise StoreBroken(f"{path} cannot be opened as a sqlite database ({e})") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rev = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            rev = row[0] if row else None
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        return rev, runs
    except sqlite3.DatabaseError as e:
        raise StoreBroken(
            f"{path} is not an MLflow sqlite database ({e}); move it away or pass "
            "--tracking-uri to use another store"
        ) from None
    finally:
        con.close()


def _build(path: Path, artifact_uri: str | None) -> None:
    """Creates a complete store at ``path`` (atomically: temp file, then link)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    store = SqlAlchemyStore(
        f"sqlite:///{tmp}", artifact_uri or (path.parent / "mlartifacts").as_uri()
    )
    store.engine.dispose()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if another process made the store meanwhile: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sweep(path: Path) -> None:
    """Removes temporary databases of first runs that died while building them."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        # ".mlflow.db.tmp-<pid>", or SQLite's "-journal"/"-wal"/"-shm" file beside it
        pid = tmp.name[len(f".{path.name}.tmp-") :].split("-")[0]
        if pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure(uri: str, artifact_uri: str | None = None) -> None:
    """Makes a ``sqlite:///`` store usable before MLflow touches it (other URIs: nothing).

    Raises:
        StoreBroken: not a database, or a database with runs under an older schema.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    if not path.exists() or path.stat().st_size == 0:
        path.unlink(missing_ok=True)
        _build(path, artifact_uri)
        return
    rev, runs = _state(path)
    head = _head_revision()
    if rev == head:
        return
    if runs:
        raise StoreBroken(
            f"{path} holds {runs} runs under MLflow schema {rev}, but this MLflow needs "
            f"{head}: back it up, then run `mlflow db upgrade sqlite:///{path}`"
        )
    aside = path.with_name(f"{path.name}.half-made-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(aside)
    print(
        f"note: {path} was left half-created (schema {rev or 'none'}, no runs) by an "
        f"interrupted first run; moved it to {aside.name} and created it again",
        file=sys.stderr,
    )
    _build(path, artifact_uri)


def discover(explicit: str | None, start: Path | None = None) -> tuple[str | None, str]:
    """(tracking URI or None, one line saying where it came from or where it looked)."""
    if explicit:
        return explicit, f"--tracking-uri {explicit}"
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, f"MLFLOW_TRACKING_URI={env}"
    start = (start or Path.cwd()).absolute()
    for folder in [start, *start.parents]:
        db = folder / EMBEDDED_DIR / DB_NAME
        with contextlib.suppress(OSError):
            if db.is_file():
                return f"sqlite:///{db}", f"the embedded store {db}"
    return None, (
        f"no {EMBEDDED_DIR}/{DB_NAME} in {start} or any parent directory, and neither "
        "--tracking-uri nor MLFLOW_TRACKING_URI is set; run from the directory of your "
        "`convflow run` or pass --tracking-uri"
    )
