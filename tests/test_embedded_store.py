"""The embedded sqlite store survives a crash on its first run (pipelines/embedded.py)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from convflow.pipelines import embedded, tracking
from mlflow import MlflowClient

CHILD = "import sys; from convflow.pipelines import tracking; tracking.connect(sys.argv[1])"


def _usable(uri: str) -> None:
    tracking.connect(uri)
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("after")
    client.create_run(exp)
    client.create_registered_model("m")
    assert client.get_registered_model("m").name == "m"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupting_the_first_run_during_creation_then_next_run_succeeds(tmp_path, sig):
    db = tmp_path / "convflow_runs" / "mlflow.db"
    uri = f"sqlite:///{db}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not list(db.parent.glob(".mlflow.db.tmp-*")):  # the migrations are running
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()[-2000:]
        time.sleep(0.005)
    child.send_signal(sig)
    child.wait(timeout=120)
    assert child.returncode != 0
    assert not db.exists()  # no half-made store under the real name
    _usable(uri)
    assert not list(db.parent.glob(".mlflow.db.tmp-*"))  # the dead run's scratch is swept


def _half_made(db: Path, runs: int = 0) -> str:
    """A store whose migrations stopped part-way (what an interrupted MLflow leaves)."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base
    from sqlalchemy import create_engine

    db.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    config = _get_alembic_config(url)
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revisions[5].revision)
    engine.dispose()
    with sqlite3.connect(db) as con:
        for i in range(runs):
            con.execute(
                "INSERT INTO runs (run_uuid, lifecycle_stage, experiment_id, status, "
                "source_type) VALUES (?, 'active', 0, 'FINISHED', 'LOCAL')",
                (f"r{i}",),
            )
    return revisions[5].revision


def test_half_made_store_is_moved_aside_and_rebuilt(tmp_path, capsys):
    db = tmp_path / "convflow_runs" / "mlflow.db"
    rev = _half_made(db)
    _usable(f"sqlite:///{db}")
    err = capsys.readouterr().err
    assert f"was left half-created (schema {rev}, no runs)" in err
    (aside,) = db.parent.glob("mlflow.db.half-made-*")
    assert aside.stat().st_size > 0  # kept, not deleted


def test_old_store_with_runs_gets_the_upgrade_command_not_a_server_message(tmp_path):
    db = tmp_path / "old" / "mlflow.db"
    _half_made(db, runs=2)
    with pytest.raises(tracking.TrackingUnavailable) as e:
        tracking.connect(f"sqlite:///{db}")
    msg = str(e.value)
    assert "holds 2 runs under MLflow schema" in msg and "mlflow db upgrade" in msg
    assert "server" not in msg and "\n" not in msg


def test_a_file_that_is_not_a_database(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(tracking.TrackingUnavailable, match="is not an MLflow sqlite database"):
        tracking.connect(f"sqlite:///{db}")


def test_discover_nearest_store_upward_and_never_create(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    uri, where = embedded.discover(None, deep)
    assert uri is None and f"no convflow_runs/mlflow.db in {deep} or any parent" in where
    assert not any(p.name == "convflow_runs" for p in tmp_path.rglob("*"))
    store = tmp_path / "a" / "convflow_runs"
    store.mkdir()
    (store / "mlflow.db").write_bytes(b"")
    assert embedded.discover(None, deep) == (
        f"sqlite:///{store / 'mlflow.db'}",
        f"the embedded store {store / 'mlflow.db'}",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert embedded.discover(None, deep)[0] == "http://127.0.0.1:9"
    assert embedded.discover("sqlite:///x.db", deep)[0] == "sqlite:///x.db"
