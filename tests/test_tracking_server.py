"""The pipeline against a real MLflow server process (started by mlflow/server.sh)."""

from __future__ import annotations

import re
import time

from conftest import free_port
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient


def test_ingest_pipeline_is_recorded_on_a_real_server(mlflow_server, small_idx, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    files = "\n".join(f"    {k}: {v}" for k, v in small_idx.items())
    cfg.write_text(
        f"pipeline: {{name: server_smoke, artifact_root: {tmp_path / 'store'}}}\n"
        f"ingest:\n  idx:\n{files}\n"
    )
    args = ["run", str(cfg), "--tracking-uri", mlflow_server, "--to", "ingest", "--quiet"]
    assert main(args) == 0
    assert main(args) == 0  # second time: a cache hit
    out = capsys.readouterr().out
    assert re.search(r"\| ingest +\| cached +\|", out)

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("server_smoke")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.config_hash != ''")
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    assert sorted(r.data.tags["cache"] for r in parents) == ["hit", "miss"]
    # Only the step that ran has a run of its own; the cache hit is a tag on its parent.
    (miss,) = client.search_runs([exp.experiment_id], filter_string="tags.cache_key != ''")
    assert miss.data.tags["cache"] == "miss"
    assert miss.data.metrics["test_examples"] == 200.0
    assert {a.path for a in client.list_artifacts(miss.info.run_id)} >= {"step.json"}
    assert "config.yaml" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}


def test_unreachable_server_fails_fast_with_one_line(tmp_path, capsys):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"pipeline: {{name: nowhere, artifact_root: {tmp_path / 'store'}}}\n")
    t0 = time.monotonic()
    code = main(["run", str(cfg), "--tracking-uri", uri, "--quiet"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith(f"error: MLflow tracking store {uri} is unreachable")
    assert "\n" not in err
    assert elapsed < 60  # bounded retries, not the client's default minutes
