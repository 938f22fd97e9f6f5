"""Consumers find the model from anywhere: README snippet, `convflow predict`, empty batches."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from convflow.components.base import BLESSING, OutputArtifact
from convflow.components.evaluate import BLESSING_FILE
from convflow.components.ingest.spec import FASHION_MNIST_CLASSES
from convflow.components.register import RegisterParams, register
from convflow.components.serving.mlflow_io import load_served, tracking
from convflow.components.train import TrainParams, train
from convflow.pipelines import tracking as tracking_store
from fmnist_slices import publish, run_component, small_pipeline_data
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path("/work/shared/cases/images")
NAME = "fashion_mnist_lenet"  # the README's model name


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project directory whose convflow_runs/mlflow.db holds a registered @champion."""
    root = tmp_path_factory.mktemp("project")
    uri = f"sqlite:///{root / 'convflow_runs' / 'mlflow.db'}"
    tracking_store.connect(uri)
    data = root / "data"
    _, pre = small_pipeline_data(data, 600, 100, 100)
    params = TrainParams(epochs=1, batch_size=64, seed=3)
    model = run_component(train, data / "train", {"examples": pre}, params)["model"]
    (data / "blessing").mkdir()
    (data / "blessing" / BLESSING_FILE).write_text(
        json.dumps({"blessed": True, "reasons": ["test"], "champion": None})
    )
    blessing = publish(OutputArtifact(str(data / "blessing"), BLESSING), "test")
    inputs = {"model": model, "examples": pre, "blessing": blessing}
    with tracking(uri):
        out = run_component(
            register,
            data / "register",
            inputs,
            RegisterParams(),
            {"model_name": NAME, "tracking_uri": uri},
        )
    version = MlflowClient(uri, registry_uri=uri).get_model_version(
        NAME, out["registration"].properties["version"]
    )
    return {"root": root, "uri": uri, "run_id": version.run_id}


def _env() -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(k, None)
    return env


def _cli(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convflow.pipelines.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )


def test_readme_snippet_runs_from_any_directory(project, tmp_path):
    text = (REPO / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "pyfunc.load_model" in b
    )
    assert block.count("mlflow.set_tracking_uri(") == 1  # the one thing a user sets
    shutil.copy(SAMPLES / "trouser8.png", tmp_path / "shoe.png")
    code = block.replace("/srv/convflow", str(project["root"]))
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    shutil.copy(tmp_path / "shoe.png", elsewhere / "shoe.png")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name, prob = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert name in FASHION_MNIST_CLASSES
    assert 0.0 < float(prob) <= 1.0
    assert not (elsewhere / "mlruns").exists() and not (elsewhere / "convflow_runs").exists()


def test_predict_finds_the_nearest_store_upward(project):
    deep = project["root"] / "notebooks" / "deeper"
    deep.mkdir(parents=True, exist_ok=True)
    image = deep / "trouser.png"
    shutil.copy(SAMPLES / "trouser_exif6.jpg", image.with_suffix(".jpg"))
    done = _cli(["predict", str(image.with_suffix(".jpg"))], cwd=deep)
    assert done.returncode == 0, done.stderr[-3000:]
    path, _name, prob = done.stdout.strip().split("\t")
    assert path.endswith("trouser.jpg") and 0 < float(prob) <= 1
    assert not (deep / "convflow_runs").exists()


def test_predict_without_a_store_says_where_it_looked_and_creates_nothing(tmp_path):
    done = _cli(["predict", str(SAMPLES / "trouser8.png")], cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no MLflow store to load the model from")
    assert f"no convflow_runs/mlflow.db in {tmp_path} or any parent directory" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_predict_with_a_model_uri_and_no_image_is_a_usage_error(tmp_path):
    done = _cli(["predict", f"models:/{NAME}@champion"], cwd=tmp_path)
    assert done.returncode == 2
    assert f"no image file after the model models:/{NAME}@champion" in done.stderr
    assert "file not found" not in done.stderr and list(tmp_path.iterdir()) == []


def test_the_runs_form_in_help_loads(project):
    help_text = _cli(["predict", "--help"], cwd=project["root"]).stdout
    form = re.search(r"runs:/RUN_ID/(\w+)", help_text).group(1)
    with tracking(project["uri"]):
        _model, classes = load_served(f"runs:/{project['run_id']}/{form}")
    assert len(classes) == 10


def test_served_model_given_an_empty_batch_returns_an_empty_result(project):
    with tracking(project["uri"]):
        model, classes = load_served(f"models:/{NAME}@champion")
    out = np.asarray(model.predict(np.zeros((0, 28, 28, 1), np.uint8)))
    assert out.shape == (0, len(classes)) and out.dtype == np.float32
    one = np.asarray(model.predict(np.zeros((1, 40, 30, 1), np.uint8)))
    assert one.shape == (1, len(classes))
