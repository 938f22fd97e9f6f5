"""The registry consumer: models:/…@champion from a real MLflow server, in a fresh process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from convflow.components.base import BLESSING, OutputArtifact
from convflow.components.evaluate import BLESSING_FILE
from convflow.components.register import RegisterParams, register
from convflow.components.serving import CLASS_NAMES as META_KEY
from convflow.components.serving.mlflow_io import tracking
from convflow.components.serving.predict import predict
from convflow.components.train import TrainParams, train
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import free_port
from fmnist_slices import CLASS_NAMES, load_idx, publish, run_component, small_pipeline_data

NAME = "fmnist_consumer"
CHILD = textwrap.dedent(
    """
    import json, sys
    from convflow.components.serving.predict import predict
    sys.stdout.write("EXIT %d\\n" % predict(sys.argv[1], sys.argv[2:]))

    # The README's three lines (plus imports):
    import mlflow, numpy as np, PIL.Image
    model = mlflow.pyfunc.load_model(sys.argv[1])
    probs = model.predict(np.asarray(PIL.Image.open(sys.argv[2]).convert("L"))[None, ..., None])
    print("README", model.metadata.metadata["class_names"][probs.argmax()], probs.max())
    """
)


@pytest.fixture(scope="module")
def champion(mlflow_server, tmp_path_factory):
    """A LeNet-5 trained on 3000 real images, registered on the server as @champion."""
    root = tmp_path_factory.mktemp("consumer")
    _, pre = small_pipeline_data(root, 3000, 100, 100)
    params = TrainParams(epochs=3, batch_size=64, seed=5)
    model = run_component(train, root / "train", {"examples": pre}, params)["model"]
    (root / "blessing").mkdir()
    (root / "blessing" / BLESSING_FILE).write_text(
        json.dumps({"blessed": True, "reasons": ["test"], "champion": None})
    )
    blessing = publish(OutputArtifact(str(root / "blessing"), BLESSING), "test")
    inputs = {"model": model, "examples": pre, "blessing": blessing}
    pipeline = {"model_name": NAME, "tracking_uri": mlflow_server}
    run_component(register, root / "register", inputs, RegisterParams(), pipeline)
    return f"models:/{NAME}@champion"


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """20 real test images as PNGs: upscaled to 56×56, and one letterboxed to 28×44."""
    root = tmp_path_factory.mktemp("pngs")
    images, labels = load_idx("t10k", 500, 520)
    paths = []
    for i, image in enumerate(images[:, :, :, 0]):
        path = root / f"item{i:02d}.png"
        if i == 0:  # wide canvas: the centre square crop gets the original back
            Image.fromarray(np.pad(image, ((0, 0), (8, 8)))).save(path)
        else:
            Image.fromarray(image).resize((56, 56), Image.BILINEAR).save(path)
        paths.append(str(path))
    return paths, labels


def parse(stdout: str) -> dict[str, tuple[str, float]]:
    rows = [line.split("\t") for line in stdout.splitlines() if line.count("\t") == 2]
    return {path: (name, float(prob)) for path, name, prob in rows}


@pytest.mark.slow
def test_fresh_process_classifies_pngs_of_another_size(champion, pngs, mlflow_server):
    paths, labels = pngs
    assert Image.open(paths[1]).size == (56, 56) and Image.open(paths[0]).size == (44, 28)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_REGISTRY_URI", None)  # the registry follows the tracking server
    done = subprocess.run(
        [sys.executable, "-c", CHILD, champion, *paths],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EXIT 0" in done.stdout
    results = parse(done.stdout)
    assert list(results) == paths
    assert all(name in CLASS_NAMES and 0.1 <= p <= 1.0 for name, p in results.values())
    predicted = np.array([CLASS_NAMES.index(results[p][0]) for p in paths])
    assert (predicted == labels).mean() >= 0.7  # ~0.8 for this small model; chance is 0.1
    readme = next(line for line in done.stdout.splitlines() if line.startswith("README"))
    assert readme.split()[1] == results[paths[0]][0]


def test_bad_files_get_one_line_each_and_the_rest_is_classified(champion, pngs, tmp_path,
                                                               mlflow_server):  # fmt: skip
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 3, 4, 5), np.uint8))
    missing = tmp_path / "missing.png"
    good = pngs[0][:2]
    out, err = io.StringIO(), io.StringIO()
    with tracking(mlflow_server):
        code = predict(
            champion, [good[0], str(corrupt), str(wrong), str(missing), good[1]], out, err
        )
    assert code == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"error: {corrupt}: not a readable image")
    assert lines[1] == f"error: {wrong}: expected an H×W or H×W×1 array, got shape (2, 3, 4, 5)"
    assert lines[2].startswith(f"error: {missing}: not a readable image")
    assert list(parse(out.getvalue())) == good


def test_grayscale_npy_and_colour_png_are_accepted(champion, pngs, tmp_path, mlflow_server):
    image, _ = load_idx("t10k", 500, 501)
    npy = tmp_path / "item.npy"
    np.save(npy, image[0, :, :, 0])  # H×W, as numpy users have it
    rgb = tmp_path / "rgb.png"
    Image.open(pngs[0][0]).convert("RGB").save(rgb)
    out, err = io.StringIO(), io.StringIO()
    with tracking(mlflow_server):
        assert predict(champion, [str(npy), str(rgb)], out, err) == 0, err.getvalue()
    results = parse(out.getvalue())
    assert results[str(npy)][0] == results[str(rgb)][0]


def test_model_metadata_carries_class_names(champion, mlflow_server):
    import mlflow

    with tracking(mlflow_server):
        info = mlflow.models.get_model_info(champion)
    assert info.metadata[META_KEY] == CLASS_NAMES


def test_unreachable_server_is_a_clear_error_after_bounded_retries(pngs, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    dead = f"http://127.0.0.1:{free_port()}"
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with tracking(dead):
        code = predict(f"models:/{NAME}@champion", pngs[0][:1], out, err)
    assert code == 2 and out.getvalue() == ""
    assert err.getvalue().startswith(f"error: cannot load model models:/{NAME}@champion: ")
    assert len(err.getvalue().splitlines()) == 1
    assert time.monotonic() - start < 60
