"""The image_segmentation pipeline through the CLI against a real MLflow server: the served
model returns class maps at the input's size in a fresh process, predict writes its files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient
from PIL import Image

NAME = "e2e_scenes"
CHILD = textwrap.dedent(
    """
    import sys, mlflow, numpy as np
    model = mlflow.pyfunc.load_model(sys.argv[1])
    rng = np.random.default_rng(0)
    for h, w in ((64, 64), (40, 72)):
        out = model.predict(rng.integers(0, 255, (2, h, w, 1)).astype(np.uint8))
        print("SHAPE", out.shape, out.dtype, int(out.min()), int(out.max()))
    print("OUTPUTS", model.metadata.get_output_schema().inputs[0].shape)
    """
)
# A register.probabilities model: MLflow's keras pyfunc returns its dict of outputs inside a
# 0-d object array.
CHILD_PROBS = textwrap.dedent(
    """
    import sys, mlflow, numpy as np
    model = mlflow.pyfunc.load_model(sys.argv[1])
    out = model.predict(np.random.default_rng(0).integers(0, 255, (2, 40, 72, 1)).astype(np.uint8))
    out = out.item()
    cmap, probs = np.asarray(out["class_map"]), np.asarray(out["probabilities"])
    print("MAP", cmap.shape, cmap.dtype)
    print("PROBS", probs.shape, probs.dtype)
    print("SUMS", float(np.abs(probs.sum(-1) - 1).max()))
    print("ARGMAX", bool((probs.argmax(-1) == cmap).all()))
    print("SCHEMA", [(s.name, s.shape) for s in model.metadata.get_output_schema().inputs])
    """
)


@pytest.mark.slow
def test_segmentation_pipeline_serves_input_sized_maps_and_predict_writes_files(
    mlflow_server, tmp_path, capsys
):
    cfg = tmp_path / "seg.yaml"
    cfg.write_text(
        f"pipeline: {{name: {NAME}, template: image_segmentation, "
        f"artifact_root: {tmp_path / 'store'}}}\n"
        "ingest: {source: scenes, scenes: {train_scenes: 48, validation_scenes: 16, "
        "test_scenes: 16}}\n"
        "preprocess: {steps: [resize, gcn], size: 64}\n"
        "train: {model: unet, model_kwargs: {base_filters: 4, depth: 2, batch_norm: true}, "
        "epochs: 1, batch_size: 16, class_weighting: median_frequency, precision: float32}\n"
        "evaluate: {min_miou: 0.0}\n"
    )
    run = ["run", str(cfg), "--tracking-uri", mlflow_server, "--quiet"]
    assert main(run) == 0
    first = capsys.readouterr().out
    assert first.count("| ran ") == 6
    assert main(run) == 0
    assert capsys.readouterr().out.count("| cached ") == 6

    client = MlflowClient(mlflow_server)
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    uri = f"models:/{NAME}@champion"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, uri], env=env, capture_output=True, text=True, timeout=600
    )
    assert child.returncode == 0, child.stderr[-3000:]
    shapes = [line for line in child.stdout.splitlines() if line.startswith("SHAPE")]
    assert shapes[0].startswith("SHAPE (2, 64, 64) int32")
    assert shapes[1].startswith("SHAPE (2, 40, 72) int32")
    for line in shapes:
        assert int(line.split()[-2]) >= 0 and int(line.split()[-1]) <= 10
    assert "OUTPUTS (-1, -1, -1)" in child.stdout

    images = tmp_path / "inputs"
    images.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64), np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (30, 50), np.uint8)).save(images / "b.png")
    before = (images / "a.png").read_bytes()
    out = tmp_path / "pred"
    code = main(
        ["predict", uri, str(images / "a.png"), str(images / "b.png"), "--out", str(out),
         "--tracking-uri", mlflow_server]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_mask.png",
        "a_overlay.png",
        "b_mask.png",
        "b_overlay.png",
    ]
    with Image.open(out / "b_mask.png") as mask, Image.open(out / "b_overlay.png") as over:
        assert mask.mode == "P" and mask.size == (50, 30)
        assert over.mode == "RGB" and over.size == (50, 30)
    assert (images / "a.png").read_bytes() == before
    line = next(x for x in printed.splitlines() if x.startswith(str(images / "b.png")))
    shares = [float(tok.rstrip("%")) for tok in line.split("\t")[1].split() if tok.endswith("%")]
    assert abs(sum(shares) - 100) < 0.5
    # An output that would overwrite an input is refused: c.png's mask would be c_mask.png.
    Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8)).save(images / "c.png")
    Image.fromarray(rng.integers(0, 255, (8, 8), np.uint8)).save(images / "c_mask.png")
    guarded = (images / "c_mask.png").read_bytes()
    args = [str(images / "c.png"), str(images / "c_mask.png"), "--out", str(images)]
    assert main(["predict", uri, *args, "--tracking-uri", mlflow_server]) == 1
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert (images / "c_mask.png").read_bytes() == guarded

    # register.probabilities: the same network served with per-pixel probabilities too is
    # another version (only register runs again); the blessing was decided against no
    # champion, so it becomes @challenger while version 1 stays @champion.
    assert main([*run, "--set", "register.probabilities=true"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("| cached ") == 5 and printed.count("| ran ") == 1
    assert client.get_model_version_by_alias(NAME, "challenger").version == "2"
    assert client.get_model_version_by_alias(NAME, "champion").version == "1"
    child = subprocess.run(
        [sys.executable, "-c", CHILD_PROBS, f"models:/{NAME}@challenger"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in child.stdout.splitlines() if " " in line)
    assert lines["MAP"] == "(2, 40, 72) int32"
    assert lines["PROBS"] == "(2, 40, 72, 11) float32"
    assert float(lines["SUMS"]) < 1e-4 and lines["ARGMAX"] == "True"
    assert lines["SCHEMA"] == "[('class_map', (-1, -1, -1)), ('probabilities', (-1, -1, -1, 11))]"
    out2 = tmp_path / "pred2"
    args = [str(images / "b.png"), "--out", str(out2), "--tracking-uri", mlflow_server]
    assert main(["predict", f"models:/{NAME}@challenger", *args]) == 0
    assert sorted(p.name for p in out2.iterdir()) == ["b_mask.png", "b_overlay.png"]
