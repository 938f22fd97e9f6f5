"""Loading a model must not run its code unless the user trusts it (convflow predict)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from convflow.pipelines.cli import main
from PIL import Image

SIGNATURE = {
    "inputs": json.dumps(
        [{"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, -1, -1, 1]}}]
    ),
    "outputs": json.dumps(
        [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]
    ),
}
EVIL = """
import pathlib, numpy as np
pathlib.Path({marker!r}).write_text("the model's own code ran")

class _Model:
    def predict(self, data, params=None):
        return np.array([[0.25, 0.75]], np.float32)

def _load_pyfunc(path):
    return _Model()
"""


def write_model(root, marker, *, loader="evil_loader", signature=True, exported=True):
    """A model directory whose MLmodel names its own loader module and code path."""
    import yaml

    root.mkdir()
    (root / "code").mkdir()
    (root / "code" / "evil_loader.py").write_text(EVIL.format(marker=str(marker)))
    flavors = {
        "python_function": {"loader_module": loader, "code": "code", "python_version": "3.11"},
        "keras": {"save_exported_model": exported, "data": "data"},
    }
    if loader == "mlflow.keras":
        del flavors["python_function"]["code"]
    mlmodel = {"flavors": flavors, "metadata": {"class_names": ["cat", "dog"]}}
    if signature:
        mlmodel["signature"] = SIGNATURE
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return root


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return str(path)


def test_a_foreign_loader_is_refused_before_any_of_its_code_runs(tmp_path, image, capsys):
    marker = tmp_path / "ran.txt"
    model = write_model(tmp_path / "foreign", marker)
    assert main(["predict", str(model), image]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"error: {model} was not logged by convflow (")
    assert "loader_module 'evil_loader'" in err and "code paths 'code'" in err
    assert "--trust-model" in err
    assert not marker.exists()


def test_trust_model_is_the_explicit_opt_in(tmp_path, image, capsys):
    marker = tmp_path / "ran.txt"
    model = write_model(tmp_path / "foreign", marker)
    assert main(["predict", str(model), image, "--trust-model"]) == 0
    assert marker.exists()
    assert capsys.readouterr().out.strip().endswith("dog\t0.7500")


def test_a_model_without_signature_is_one_line(tmp_path, image, capsys):
    model = write_model(
        tmp_path / "unsigned", tmp_path / "m", loader="mlflow.keras", signature=False
    )
    assert main(["predict", str(model), image]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {model} has no input signature; convflow needs one")
    assert "\n" not in err


def test_a_keras_file_model_is_refused_too(tmp_path, image, capsys):
    # A .keras file (not an exported SavedModel) can deserialize Python: not convflow's kind.
    model = write_model(tmp_path / "kfile", tmp_path / "m", loader="mlflow.keras", exported=False)
    assert main(["predict", str(model), image]) == 2
    assert "not an exported SavedModel" in capsys.readouterr().err
