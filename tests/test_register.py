"""The register component: served model logged with lineage; challenger/champion aliases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from convflow.components.base import BLESSING, ComponentError, OutputArtifact
from convflow.components.evaluate import BLESSING_FILE
from convflow.components.register import RegisterParams, register
from convflow.components.serving.mlflow_io import tracking
from convflow.components.train import TrainParams, train

sys.path.insert(0, str(Path(__file__).parent))
from fmnist_slices import publish, raw_splits, run_component, small_pipeline_data

PIPELINE = {
    "model_name": "fmnist_lenet",
    "config_hash": "cfg123",
    "git_commit": "abc123",
    "run_id": "parent-run",
    "pipeline_name": "fashion_mnist_lenet",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("register")
    raw, pre = small_pipeline_data(root, 600, 100, 100)
    params = TrainParams(epochs=1, batch_size=64, seed=3)
    model = run_component(train, root / "train", {"examples": pre}, params)["model"]
    return {"raw": raw, "pre": pre, "model": model}


def blessing(root: Path, blessed: bool, champion_version: str | None):
    out = OutputArtifact(str(root), BLESSING)
    root.mkdir(parents=True)
    champion = {"version": champion_version, "accuracy": 0.5} if champion_version else None
    verdict = {"blessed": blessed, "reasons": [f"test says {blessed}"], "champion": champion}
    (root / BLESSING_FILE).write_text(json.dumps(verdict))
    out.properties["blessed"] = blessed
    return publish(out, "test")


def run_register(trained, root, uri, blessed, champion_version, variant=None):
    """Registers the trained model; each ``variant`` (default: the root's name) stands for a
    different network (another fingerprint), since the same network registers only once."""
    import dataclasses

    model = trained["model"]
    variant = root.name if variant is None else variant
    if variant:  # "" keeps the trained model's own fingerprint
        model = dataclasses.replace(model, fingerprint=f"{model.fingerprint}-{variant}")
    inputs = {
        "model": model,
        "examples": trained["pre"],
        "blessing": blessing(root / "blessing", blessed, champion_version),
    }
    pipeline = {**PIPELINE, "tracking_uri": uri}
    out = run_component(register, root / "run", inputs, RegisterParams(), pipeline)
    return out["registration"].properties


def aliases(uri):
    from mlflow import MlflowClient

    model = MlflowClient(uri, registry_uri=uri).get_registered_model("fmnist_lenet")
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_aliases_move_only_for_blessed_models(trained, tmp_path, sqlite_uri):
    first = run_register(trained, tmp_path / "1", sqlite_uri, True, None)
    assert first["version"] == "1" and first["promoted"]
    assert aliases(sqlite_uri) == {"challenger": "1", "champion": "1"}

    second = run_register(trained, tmp_path / "2", sqlite_uri, False, "1")
    assert second["aliases"] == ["challenger"] and not second["promoted"]
    assert aliases(sqlite_uri) == {"challenger": "2", "champion": "1"}

    third = run_register(trained, tmp_path / "3", sqlite_uri, True, "1")
    assert aliases(sqlite_uri) == {"challenger": "3", "champion": "3"}
    assert third["promoted"]


def test_blessing_against_a_stale_champion_does_not_promote(trained, tmp_path, sqlite_uri):
    run_register(trained, tmp_path / "1", sqlite_uri, True, None)
    run_register(trained, tmp_path / "2", sqlite_uri, True, "1")  # champion is now 2
    late = run_register(trained, tmp_path / "3", sqlite_uri, True, "1")  # compared with 1
    assert not late["promoted"]
    assert aliases(sqlite_uri) == {"challenger": "3", "champion": "2"}
    record = json.loads((tmp_path / "3" / "run" / "registration" / "registration.json").read_text())
    assert "champion moved from 1 to 2 after evaluation" in record["reason"]


def test_version_carries_lineage_signature_and_class_names(trained, tmp_path, sqlite_uri):
    import mlflow
    from mlflow import MlflowClient

    run_register(trained, tmp_path, sqlite_uri, True, None)
    client = MlflowClient(sqlite_uri, registry_uri=sqlite_uri)
    version = client.get_model_version("fmnist_lenet", "1")
    assert version.tags["convflow.dataset_fingerprint"] == trained["pre"].fingerprint
    assert version.tags["convflow.config_hash"] == "cfg123"
    assert version.tags["convflow.git_commit"] == "abc123"
    assert version.tags["convflow.pipeline_run_id"] == "parent-run"
    assert version.tags["convflow.blessed"] == "true"
    assert version.tags["convflow.blessing"] == "test says True"

    with tracking(sqlite_uri):
        info = mlflow.models.get_model_info("models:/fmnist_lenet@champion")
        local = mlflow.artifacts.download_artifacts("models:/fmnist_lenet/1")
    assert info.metadata["class_names"][1] == "Trouser"
    spec = info.signature.inputs.inputs[0]
    assert (spec.type, spec.shape) == (np.dtype("uint8"), (-1, -1, -1, 1))
    requirements = (Path(local) / "requirements.txt").read_text()
    assert "keras==" in requirements and "mlflow==" in requirements
    assert all("==" in line for line in requirements.split() if not line.startswith("-"))


def test_served_model_equals_network_on_raw_images(trained, tmp_path, sqlite_uri):
    import keras
    from convflow.components.serving.mlflow_io import load_served
    from convflow.components.serving.model import load_network

    run_register(trained, tmp_path, sqlite_uri, True, None)
    with tracking(sqlite_uri):
        model, classes = load_served("models:/fmnist_lenet@champion")
    raw, _ = raw_splits(0, 0, 16)["test"]
    from convflow.components.serving.model import build_preprocessor

    network = load_network(trained["model"])
    expected = keras.ops.softmax(network(build_preprocessor(trained["pre"].properties)(raw)))
    served = model.predict(raw)
    # The network computes in bfloat16 (8-bit mantissa): graph vs eager rounding differs a bit.
    np.testing.assert_allclose(served, np.asarray(expected), atol=5e-3)
    np.testing.assert_array_equal(served.argmax(axis=1), np.asarray(expected).argmax(axis=1))
    assert len(classes) == 10


def test_missing_model_name_is_a_clear_error(trained, tmp_path, sqlite_uri):
    inputs = {
        "model": trained["model"],
        "examples": trained["pre"],
        "blessing": blessing(tmp_path / "b", True, None),
    }
    with pytest.raises(ComponentError, match=r"pipeline\.model_name is not set"):
        run_component(register, tmp_path / "run", inputs, RegisterParams(), {})
