"""Two pipeline runs at once against one tracking store: MLflow on PostgreSQL, and sqlite.

The PostgreSQL server (Debian's ``postgresql``: initdb into a temporary folder, ``pg_ctl`` on a
loopback port) and the ``mlflow/server.sh`` on it are started by the test. Each pipeline run is
a ``convflow run`` subprocess in its own working directory with its own artifact store.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from convflow.components import alias_history
from mlflow.tracking import MlflowClient
from services import mlflow_server, postgres_server

MODEL = "shared_fashion"


def start_run(workdir: Path, uri: str, seed: int, to: str | None = None) -> subprocess.Popen:
    workdir.mkdir(parents=True)
    cfg = workdir / "cfg.yaml"
    cfg.write_text(
        f"pipeline: {{name: shared, model_name: {MODEL}, artifact_root: {workdir / 'store'}}}\n"
        "ingest: {max_examples: 1000}\n"
        f"train: {{epochs: 1, batch_size: 64, seed: {seed}, model_kwargs: {{filters: [4, 8]}},\n"
        "        precision: float32}\n"
        "evaluate: {min_accuracy: 0.0}\n"
    )
    args = ["run", str(cfg), "--tracking-uri", uri, *(["--to", to] if to else [])]
    return subprocess.Popen(
        [sys.executable, "-m", "convflow.pipelines.cli", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def registration(workdir: Path) -> dict:
    return json.loads(next((workdir / "store").rglob("registration.json")).read_text())


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    outs = [p.communicate(timeout=1200)[0] for p in procs]
    return [(p.returncode, out) for p, out in zip(procs, outs, strict=True)]


@pytest.mark.slow
def test_two_pipelines_register_one_model_at_once_on_postgresql(tmp_path):
    with postgres_server() as db, mlflow_server(tmp_path / "mlflow", db) as uri:
        runs = [start_run(tmp_path / f"team{i}", uri, seed=i) for i in (1, 2)]
        (code1, out1), (code2, out2) = finish(runs)
        assert code1 == 0, out1[-3000:]
        assert code2 == 0, out2[-3000:]

        records = [registration(tmp_path / f"team{i}") for i in (1, 2)]
        client = MlflowClient(uri)
        versions = client.search_model_versions(f"name = '{MODEL}'")
        assert sorted(v.version for v in versions) == ["1", "2"]  # one per distinct model
        assert sorted(r["version"] for r in records) == ["1", "2"]
        assert len({v.run_id for v in versions}) == 2

        challenger = client.get_model_version_by_alias(MODEL, "challenger")
        champion = client.get_model_version_by_alias(MODEL, "champion")
        assert challenger.version in ("1", "2") and champion.tags["convflow.blessed"] == "true"
        promoted = {r["version"] for r in records if r["promoted"]}
        assert champion.version in promoted
        for v in versions:
            assert v.tags["convflow.promotion"], v.version

        # Promotion history: champion moves (under the promotion lease) form one chain ending
        # at the current champion; each registration recorded its challenger move.
        moves = list(reversed(alias_history.moves(client, MODEL, "champion")))
        assert moves and moves[0].from_version == "" and moves[-1].to_version == champion.version
        for before, after in itertools.pairwise(moves):
            assert after.from_version == before.to_version
        challengers = alias_history.moves(client, MODEL, "challenger")
        assert sorted(m.to_version for m in challengers) == ["1", "2"]


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.slow
def test_two_runs_writing_one_sqlite_database_at_once(tmp_path):
    db = tmp_path / "shared" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    results = finish([start_run(tmp_path / f"store{i}", uri, i, to="preprocess") for i in (1, 2)])
    succeeded = 0
    for code, out in results:
        assert "Traceback" not in out, out[-3000:]
        if code == 0:
            succeeded += 1
        else:  # the second may fail, but with one line saying why
            errors = [line for line in out.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1 and "mlflow" in errors[0].lower(), out[-3000:]
    assert succeeded >= 1
    assert integrity(db) == "ok"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("shared")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.config_hash != ''")
    assert len(parents) == succeeded and all(r.info.status == "FINISHED" for r in parents)
