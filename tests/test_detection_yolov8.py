"""keras-cv YOLOv8 through the detection task: its labels from the stored boxes, and the
served graph's decoding equal to keras-cv's own (``YOLOV8Detector.decode_predictions``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from convflow.components.tasks.detection_serving import YoloV8Detections, detections_layer
from convflow.components.tasks.detection_targets import yolov8_labels

keras_cv = pytest.importorskip("keras_cv")  # TensorFlow-bound; installed with convflow


def test_labels_are_xyxy_pixels_with_minus_one_padding():
    boxes = np.array([[[0.25, 0.5, 0.75, 1.0], [0, 0, 0, 0]]], np.float32)  # y1 x1 y2 x2
    classes = np.array([[3, -1]], np.int32)
    got = yolov8_labels(boxes, classes, (64, 32))
    np.testing.assert_allclose(got["boxes"].numpy(), [[[16, 16, 32, 48], [-1, -1, -1, -1]]])
    np.testing.assert_allclose(got["classes"].numpy(), [[3, -1]])


def test_decoding_matches_keras_cv_decode_predictions():
    from keras_cv.src.models.object_detection.yolo_v8 import yolo_v8_detector as D

    rng = np.random.default_rng(0)
    A, C = 8 * 8 + 4 * 4 + 2 * 2, 3  # a 64 px input: anchors at strides 8, 16, 32
    raw = {"boxes": rng.normal(size=(2, A, 64)).astype("float32"),
           "classes": rng.uniform(size=(2, A, C)).astype("float32")}  # fmt: skip
    layer = detections_layer(raw, C)
    assert isinstance(layer, YoloV8Detections) and layer.input_size == 64
    boxes, scores = layer._decode(raw)
    anchors, strides = D.get_anchors(image_shape=(64, 64, 1))
    want = D.dist2bbox(D.decode_regression_to_boxes(raw["boxes"]), anchors) * strides[:, None]
    want = np.asarray(want)  # x1, y1, x2, y2 pixels
    got = np.asarray(boxes) * 64  # y1, x1, y2, x2 normalized
    np.testing.assert_allclose(got[..., [1, 0, 3, 2]], want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(scores), raw["classes"])
    with pytest.raises(ValueError, match="85 anchor points"):
        YoloV8Detections.input_size_for(85)


@pytest.mark.slow
def test_yolov8_trains_evaluates_and_serves_through_the_detection_pipeline(mlflow_server, tmp_path):
    """A few steps on a tiny slice (keras-cv's first step traces for minutes on a CPU): the
    DAG registers a champion whose served boxes, read by ``convflow predict`` in a fresh
    process, lie inside the input; a score threshold above every score leaves none."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from convflow.components.ingest.scenes import SceneParams, fashion_scenes
    from PIL import Image

    config = Path(__file__).resolve().parents[1] / "configs" / "fashion_scenes_yolo.yaml"
    sets = [
        "ingest.scenes.train_scenes=128", "ingest.scenes.validation_scenes=16",
        "ingest.scenes.test_scenes=16", "train.epochs=1", "evaluate.min_map50=0.0",
        "evaluate.max_detections=5", "train.model=yolov8",
        "train.model_kwargs={yolov8: {size: xs, width_multiplier: 0.25}}",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "convflow.pipelines.cli", *args], capture_output=True,
            text=True, env=env, timeout=1500,
        )  # fmt: skip

    done = cli("run", str(config), *[a for s in sets for a in ("--set", s)],
               "--artifact-root", str(tmp_path / "store"), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "@champion" in done.stdout and "box_loss" in done.stdout
    metrics = (tmp_path / "store" / "evaluate").glob("*/evaluation/metrics.json")
    assert {"map", "map50", "map75", "serving_map50"} <= set(json.loads(next(metrics).read_text()))
    scene = fashion_scenes(SceneParams(test_scenes=1), "test").images[0]
    Image.fromarray(scene[..., 0]).resize((96, 80)).save(tmp_path / "scene.png")
    uri = "models:/fashion_scenes_yolo@champion"
    shown = cli("predict", uri, str(tmp_path / "scene.png"), "--out", str(tmp_path / "out"))
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = [line.split("\t") for line in shown.stdout.strip().splitlines()]
    assert 1 <= len(lines) <= 5 and (tmp_path / "out" / "scene_boxes.png").is_file()
    for line in lines:
        x1, y1, x2, y2 = (float(v) for v in line[3].split(","))
        assert 0 <= x1 <= x2 <= 96 and 0 <= y1 <= y2 <= 80
    none = cli("predict", uri, str(tmp_path / "scene.png"), "--score-threshold", "1.0",
               "--out", str(tmp_path / "out"))  # fmt: skip
    assert none.returncode == 0, none.stderr[-2000:]
    assert none.stdout.split("\t")[1] == "no boxes"  # path, answer, the (box-free) image
