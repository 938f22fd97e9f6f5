"""NMS thresholds of a served detector overridden after loading: MLflow 3.17's keras pyfunc
drops ``predict(params=...)``, so they are variables of the exported SavedModel that
``Task.override_serving`` assigns (``convflow predict --score-threshold/--iou-threshold``)."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest
from convflow.components.tasks import get
from convflow.components.tasks.detection_serving import (
    LAYER,
    YoloV1Detections,
    rows_to_detections,
    set_thresholds,
)
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

S, B, C = 4, 1, 3


def _logits(seed=0):
    """(1, S, S, 5B + C): every cell a box of random confidence, two cells overlapping."""
    rng = np.random.default_rng(seed)
    y = np.zeros((1, S, S, 5 * B + C), "float32")
    y[..., 0:2] = 0.5
    y[..., 2:4] = 0.6  # sqrt(w), sqrt(h): boxes wider than a cell, so neighbours overlap
    y[..., 4] = rng.uniform(0.05, 1.0, (S, S))
    y[..., 5:] = rng.normal(size=(S, S, C))
    return y


def _served(score_threshold=0.1, iou_threshold=0.5):
    images = keras.Input((None, None, 1), dtype="uint8", name="image")
    logits = keras.Input((S, S, 5 * B + C), name="logits")
    layer = YoloV1Detections(B, score_threshold, iou_threshold, max_detections=40, crop=True,
                             name=LAYER)  # fmt: skip
    return keras.Model([images, logits], layer(images, logits))


def _count(model, y):
    rows = keras.ops.convert_to_numpy(model([np.zeros((1, 32, 32, 1), np.uint8), y]))
    return rows_to_detections(rows[0])


def test_a_higher_score_threshold_keeps_fewer_boxes_all_above_it():
    model, y = _served(), _logits()
    before = _count(model, y)
    assert set_thresholds(model, score_threshold=0.5) == {
        "iou_threshold": 0.5, "score_threshold": 0.5,
    }  # fmt: skip
    after = _count(model, y)
    assert 0 < len(after["scores"]) < len(before["scores"])
    assert after["scores"].min() >= 0.5 and before["scores"].min() < 0.5


def test_a_lower_iou_threshold_suppresses_more_overlapping_boxes():
    model, y = _served(iou_threshold=0.9), _logits()
    loose = len(_count(model, y)["scores"])
    set_thresholds(model, iou_threshold=0.05)
    assert len(_count(model, y)["scores"]) < loose


def test_bad_overrides_name_the_threshold_and_the_range():
    model = _served()
    with pytest.raises(ValueError, match=r"score_threshold=1.5 is outside \[0.0, 1.0\]"):
        set_thresholds(model, score_threshold=1.5)
    with pytest.raises(ValueError, match="unknown threshold 'nms'"):
        set_thresholds(model, nms=0.3)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no detections/score_threshold variable"):
        set_thresholds(plain, score_threshold=0.3)
    with pytest.raises(ValueError, match="classification model has no settings to override"):
        get("classification").override_serving(plain, {"score_threshold": 0.3})


@pytest.mark.slow
def test_override_reaches_the_exported_savedmodel_loaded_by_pyfunc(tmp_path):
    """The variables survive MLflow's export: assigned on the pyfunc's raw SavedModel, its
    ``predict`` (the ``serve`` endpoint) uses them."""
    images = keras.Input((None, None, 1), dtype="uint8", name="image")
    y = keras.ops.convert_to_tensor(_logits())
    # The logits are constant: the served model's only input is the image, as in convflow.
    const = keras.layers.Lambda(lambda x: keras.ops.tile(y, (keras.ops.shape(x)[0], 1, 1, 1)))
    layer = YoloV1Detections(B, 0.1, 0.5, max_detections=40, name=LAYER)
    model = keras.Model(images, layer(images, const(images)))
    sig = ModelSignature(Schema([TensorSpec(np.dtype("uint8"), (-1, -1, -1, 1))]),
                         Schema([TensorSpec(np.dtype("float32"), (-1, 40, 6))]))  # fmt: skip
    mlflow.keras.save_model(model, tmp_path / "m", save_exported_model=True, signature=sig)
    served = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    x = np.zeros((1, 32, 32, 1), np.uint8)
    n = (served.predict(x)[0][:, 5] >= 0).sum()
    get("detection").override_serving(served, {"score_threshold": 0.5})
    rows = served.predict(x)[0]
    assert 0 < (rows[:, 5] >= 0).sum() < n and rows[rows[:, 5] >= 0, 4].min() >= 0.5
