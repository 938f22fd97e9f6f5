"""The whole DAG through the CLI on a slice of the real Fashion-MNIST, against a real server."""

from __future__ import annotations

import pytest
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient

NAME = "e2e_fashion"


@pytest.mark.slow
def test_full_pipeline_registers_champion_caches_and_keeps_champion_on_worse_run(
    mlflow_server, tmp_path, capsys
):
    cfg = tmp_path / "e2e.yaml"
    cfg.write_text(
        f"pipeline: {{name: {NAME}, artifact_root: {tmp_path / 'store'}}}\n"
        "ingest: {max_examples: 1500}\n"
        "train: {epochs: 2, batch_size: 64, model_kwargs: {filters: [8, 16]}}\n"
        "evaluate: {min_accuracy: 0.5}\n"
    )
    run = ["run", str(cfg), "--tracking-uri", mlflow_server, "--quiet"]
    assert main(run) == 0
    first = capsys.readouterr().out
    for step in ("ingest", "preprocess", "validate_data", "train", "evaluate", "register"):
        assert f"| {step} " in first and "| ran " in first

    client = MlflowClient(mlflow_server)
    v1 = client.get_model_version_by_alias(NAME, "champion")
    assert v1.version == "1"
    assert client.get_model_version_by_alias(NAME, "challenger").version == "1"
    assert v1.tags["convflow.blessed"] == "true"

    assert main(run) == 0  # same config: every step is a cache hit, nothing registered
    second = capsys.readouterr().out
    assert second.count("| cached ") == 6
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 1

    worse = [*run, "--set", "train.epochs=1", "--set", "train.learning_rate=0.00001"]
    assert main(worse) == 0
    capsys.readouterr()
    assert client.get_model_version_by_alias(NAME, "challenger").version == "2"
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags["convflow.blessed"] == "false"

    exp = client.get_experiment_by_name(NAME)
    parents = client.search_runs(
        [exp.experiment_id], filter_string="tags.config_hash != ''", order_by=["start_time ASC"]
    )
    assert len(parents) == 3
    ran = []  # a nested run per step that ran; none for cache hits
    for parent in parents:
        steps = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        )
        ran.append(sorted(r.info.run_name for r in steps))
    assert ran == [
        sorted(["ingest", "preprocess", "validate_data", "train", "evaluate", "register"]),
        [],
        ["evaluate", "register", "train"],
    ]
    assert [p.data.tags["cache"] for p in parents] == ["miss", "hit", "partial"]
    assert "accuracy" in parents[0].data.metrics and not parents[1].data.metrics
