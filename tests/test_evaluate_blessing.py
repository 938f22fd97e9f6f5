"""The evaluate component and the blessing policy: thresholds, champion, first model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from convflow.components.evaluate import ChampionResult, EvaluateParams, decide, evaluate
from convflow.components.register import RegisterParams, register
from convflow.components.tasks import classification_metrics as M
from convflow.components.train import TrainParams, train

sys.path.insert(0, str(Path(__file__).parent))
from fmnist_slices import run_component, small_pipeline_data

GOOD = TrainParams(epochs=3, batch_size=64, seed=1)
WORSE = TrainParams(epochs=1, batch_size=64, seed=1, learning_rate=1e-5)  # "deliberately worse"


def champion(acc: float) -> ChampionResult:
    return ChampionResult(version="3", accuracy=acc, model_uri="models:/m/3")


def test_first_model_is_judged_on_thresholds_only():
    good = decide({"accuracy": 0.91, "loss": 0.3}, min_accuracy=0.9, max_loss=None,
                  champion=None, tolerance=0.0)  # fmt: skip
    assert good.blessed
    assert good.reasons == [
        "accuracy 0.9100 >= min_accuracy 0.9000",
        "no champion yet: thresholds only",
    ]
    bad = decide({"accuracy": 0.89, "loss": 0.3}, min_accuracy=0.9, max_loss=None,
                 champion=None, tolerance=0.0)  # fmt: skip
    assert not bad.blessed and bad.reasons[0] == "accuracy 0.8900 < min_accuracy 0.9000"


def test_max_loss_threshold():
    blessing = decide({"accuracy": 0.95, "loss": 0.8}, min_accuracy=0.0, max_loss=0.5,
                      champion=None, tolerance=0.0)  # fmt: skip
    assert not blessing.blessed
    assert "loss 0.8000 > max_loss 0.5000" in blessing.reasons


@pytest.mark.parametrize(
    ("mine", "theirs", "tolerance", "blessed"),
    [
        (0.90, 0.90, 0.0, True),  # a tie does not lose
        (0.89, 0.90, 0.0, False),
        (0.89, 0.90, 0.02, True),  # within tolerance
        (0.87, 0.90, 0.02, False),
        (0.95, 0.90, 0.0, True),
    ],
)
def test_challenger_must_not_lose_to_champion(mine, theirs, tolerance, blessed):
    metrics = {"accuracy": 0.99, "loss": 0.1, "serving_accuracy": mine}
    verdict = decide(metrics, min_accuracy=0.5, max_loss=None, champion=champion(theirs),
                     tolerance=tolerance)  # fmt: skip
    assert verdict.blessed is blessed
    assert verdict.champion.version == "3"
    assert any("champion v3" in r for r in verdict.reasons)


def test_passing_champion_does_not_rescue_a_failed_threshold():
    metrics = {"accuracy": 0.5, "loss": 0.1, "serving_accuracy": 0.99}
    verdict = decide(metrics, min_accuracy=0.9, max_loss=None, champion=champion(0.1),
                     tolerance=0.0)  # fmt: skip
    assert not verdict.blessed


def test_per_class_metrics_from_a_known_confusion_matrix():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    cm = M.confusion_matrix(labels, predicted, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 2, 0], [1, 0, 0]])
    pc = M.per_class(cm, ["a", "b", "c"])
    assert pc["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert pc["b"]["precision"] == pytest.approx(2 / 3) and pc["b"]["recall"] == 1.0
    assert pc["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    probs = np.eye(3)[predicted] * 0.9 + 0.1 / 3
    s = M.summary(probs.astype(np.float32), labels, top_k=2)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(6), labels])), rel=1e-5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    raw, pre = small_pipeline_data(root, 2000, 200, 300)
    good = run_component(train, root / "good", {"examples": pre}, GOOD)["model"]
    worse = run_component(train, root / "worse", {"examples": pre}, WORSE)["model"]
    return {"root": root, "raw": raw, "pre": pre, "good": good, "worse": worse}


def run_evaluate(data, model, root, sqlite_uri, **params):
    inputs = {"model": data[model], "examples": data["pre"], "raw_examples": data["raw"]}
    pipeline = {"model_name": "fmnist", "tracking_uri": sqlite_uri}
    return run_component(evaluate, root, inputs, EvaluateParams(**params), pipeline)


def test_evaluate_writes_metrics_plots_and_blesses_the_first_model(data, tmp_path, sqlite_uri):
    out = run_evaluate(data, "good", tmp_path, sqlite_uri, min_accuracy=0.6)
    evaluation, blessing = out["evaluation"], out["blessing"]
    metrics = json.loads((evaluation.path / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.6 and metrics["top3_accuracy"] >= metrics["accuracy"]
    # The served model (in-graph preprocessing on raw images) agrees with Beam's output.
    assert abs(metrics["serving_accuracy"] - metrics["accuracy"]) <= 2 / 300
    per_class = json.loads((evaluation.path / "per_class.json").read_text())
    assert set(per_class["Trouser"]) == {"precision", "recall", "f1", "support"}
    assert sum(v["support"] for v in per_class.values()) == 300
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert (evaluation.path / name).stat().st_size > 1000
    verdict = json.loads((blessing.path / "blessing.json").read_text())
    assert verdict["blessed"] and verdict["champion"] is None
    assert "no champion yet: thresholds only" in verdict["reasons"]
    assert blessing.properties["blessed"] is True


def test_threshold_failure_is_not_blessed(data, tmp_path, sqlite_uri):
    out = run_evaluate(data, "good", tmp_path, sqlite_uri, min_accuracy=0.99)
    assert out["blessing"].properties["blessed"] is False
    assert any("< min_accuracy 0.9900" in r for r in out["blessing"].properties["reasons"])


def test_worse_challenger_loses_to_the_registered_champion(data, tmp_path, sqlite_uri):
    first = run_evaluate(data, "good", tmp_path / "e1", sqlite_uri)
    inputs = {"model": data["good"], "examples": data["pre"], "blessing": first["blessing"]}
    pipeline = {"model_name": "fmnist", "tracking_uri": sqlite_uri}
    run_component(register, tmp_path / "r1", inputs, RegisterParams(), pipeline)

    worse = run_evaluate(data, "worse", tmp_path / "e2", sqlite_uri)["blessing"]
    assert worse.properties["champion_version"] == "1"
    assert worse.properties["blessed"] is False
    assert worse.properties["champion_accuracy"] > worse.properties["challenger_accuracy"]
    assert any("< champion v1" in r for r in worse.properties["reasons"])

    # The same model again is the champion itself (same model fingerprint): it is not
    # compared with itself (a re-run for a report-only setting), and blessed on thresholds.
    again = run_evaluate(data, "good", tmp_path / "e3", sqlite_uri)["blessing"]
    assert again.properties["blessed"] is True
    assert again.properties["champion_accuracy"] is None
