"""The object_detection pipeline end to end (tiny scenes, one epoch) against a real MLflow
server, then its consumer: ``models:/<name>@champion`` in a fresh process returns boxes in the
input's pixels for two input sizes, and ``convflow predict`` prints boxes and writes images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from convflow.components.ingest.scenes import SceneParams, fashion_scenes
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "fashion_scenes_yolo.yaml"
NAME = "fashion_scenes_yolo"
TINY = [
    "ingest.scenes.train_scenes=256", "ingest.scenes.validation_scenes=32",
    "ingest.scenes.test_scenes=32", "train.epochs=1", "evaluate.min_map50=0.0",
    "evaluate.score_threshold=0.0", "evaluate.max_detections=20",
]  # fmt: skip
CHILD = textwrap.dedent(
    """
    import json, sys
    import mlflow, numpy as np
    model = mlflow.pyfunc.load_model(sys.argv[1])
    out = {"classes": model.metadata.metadata["class_names"]}
    for path in sys.argv[2:]:
        out[path] = np.asarray(model.predict(np.load(path))).tolist()
    print("JSON" + json.dumps(out))
    """
)


def _cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "convflow.pipelines.cli", *args],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip


@pytest.fixture(scope="module")
def champion(mlflow_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("detection")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    sets = [a for s in TINY for a in ("--set", s)]
    done = _cli("run", str(CONFIG), *sets, "--artifact-root", str(root / "store"), "--quiet",
                env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "@champion" in done.stdout
    return f"models:/{NAME}@champion", env, root


@pytest.mark.slow
def test_served_boxes_in_input_pixels_for_two_sizes_in_a_fresh_process(champion, tmp_path):
    uri, env, _ = champion
    scene = fashion_scenes(SceneParams(test_scenes=1), "test").images[0]  # (64, 64, 1)
    # The same scene 2x larger (nearest), centred in a 128 x 200 canvas: the served model
    # crops the centred square (left (200 - 128) // 2 = 36) and resizes it back to 64 px,
    # which averages each 2x2 block back to the original pixel.
    big = np.zeros((1, 128, 200, 1), np.uint8)
    big[0, :, 36:164] = scene.repeat(2, 0).repeat(2, 1)
    np.save(tmp_path / "small.npy", scene[None])
    np.save(tmp_path / "big.npy", big)
    paths = [str(tmp_path / "small.npy"), str(tmp_path / "big.npy")]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, uri, *paths], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    out = json.loads(child.stdout.split("JSON", 1)[1])
    assert len(out["classes"]) == 10 and out["classes"][0] == "T-shirt/top"
    small, large = np.asarray(out[paths[0]])[0], np.asarray(out[paths[1]])[0]
    assert small.shape == large.shape == (20, 6)  # [x1, y1, x2, y2, score, class] rows
    valid = small[:, 5] >= 0
    assert valid.sum() >= 5 and (large[:, 5] >= 0).sum() >= 5
    assert (small[valid, :4] >= 0).all() and (small[valid, :4] <= 64).all()
    # Each of the 5 best boxes of the small input comes back, same class and score, at twice
    # the size and 36 px to the right in the large one (rows may swap on near-equal scores).
    for row in small[:5]:
        want = row[:4] * 2 + np.array([36, 0, 36, 0])
        same = (large[:, 5] == row[5]) & (np.abs(large[:, 4] - row[4]) < 0.02)
        assert (np.abs(large[same, :4] - want).max(axis=1) < 1.5).any(), (row, large)
    valid = large[:, 5] >= 0
    assert (large[valid, :4] <= [200, 128, 200, 128]).all()


@pytest.mark.slow
def test_predict_prints_one_line_per_box_and_writes_annotated_images(champion, tmp_path):
    uri, env, _ = champion
    scenes = fashion_scenes(SceneParams(test_scenes=2), "test").images
    inputs = []
    for i, scene in enumerate(scenes):
        path = tmp_path / f"scene{i}.png"
        Image.fromarray(scene[..., 0]).resize((96, 80)).save(path)  # any size
        inputs.append(str(path))
    out_dir = tmp_path / "annotated"
    done = _cli("predict", uri, *inputs, "--out", str(out_dir), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split("\t") for line in done.stdout.strip().splitlines()]
    assert lines and {line[0] for line in lines} == set(inputs)
    for line in lines:
        if line[1] != "no boxes":
            name, score, box = line[1], float(line[2]), [float(v) for v in line[3].split(",")]
            assert 0 <= score <= 1 and len(box) == 4
            assert 0 <= box[0] < box[2] <= 96 and 0 <= box[1] < box[3] <= 80
            assert name in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                            "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
    for i in range(2):
        png = out_dir / f"scene{i}_boxes.png"
        assert png.is_file() and Image.open(png).size[0] >= 96


@pytest.mark.slow
def test_predict_score_threshold_override_keeps_fewer_boxes(champion, tmp_path):
    """Each predict is a fresh process; the champion was served with score_threshold 0."""
    uri, env, _ = champion
    scene = fashion_scenes(SceneParams(test_scenes=1), "test").images[0]
    path = tmp_path / "scene.png"
    Image.fromarray(scene[..., 0]).save(path)

    def scores(*flags):
        done = _cli("predict", uri, str(path), "--out", str(tmp_path / "out"), *flags, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return [float(line.split("\t")[2]) for line in done.stdout.strip().splitlines()]

    default = scores()
    cut = float(np.median(default))
    higher = scores("--score-threshold", f"{cut:.4f}")
    assert len(default) == 20 and 0 < len(higher) < len(default)  # evaluate.max_detections=20
    assert min(higher) >= round(cut, 4) - 1e-4 and min(default) < cut
    bad = _cli("predict", uri, str(path), "--score-threshold", "1.5", env=env)
    assert bad.returncode == 2 and "score_threshold=1.5 is outside [0.0, 1.0]" in bad.stderr
