"""YOLO v1: output layout, loss on hand-computed cases, target encoding, decoding and NMS;
and the keras-cv YOLOv8 wrapper."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from convflow.models.yolo import YOLOv1Loss, decode_predictions, encode_targets, non_max_suppression
from convflow.models.zoo import build, get_spec

TINY = {"width_multiplier": 0.03125, "fc_units": 16}
# keras-cv runs on TensorFlow only; every other test here runs on any Keras backend.
needs_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="keras-cv's YOLOv8 is TensorFlow-bound"
)


def test_output_is_s_by_s_by_b5_plus_c_with_per_cell_class_probabilities():
    model = build("yolo_v1", input_shape=(128, 64, 3), num_classes=4, grid_size=3, **TINY)
    y = keras.ops.convert_to_numpy(model(np.zeros((2, 128, 64, 3), "float32")))
    assert y.shape == (2, 3, 3, 2 * 5 + 4)
    np.testing.assert_allclose(y[..., 10:].sum(-1), 1.0, rtol=1e-5)
    assert model.get_layer("conv1_1").kernel.shape == (7, 7, 3, 2)  # 7×7/2, 64·1/32
    assert sum(layer.name.startswith("conv") and "_" in layer.name and layer.name.count("_") == 1
               for layer in model.layers) == 24  # fmt: skip


def test_input_must_be_a_fixed_multiple_of_the_stride():
    with pytest.raises(ValueError, match=r"multiples of 64.*\(100, 100, 3\)"):
        build("yolo_v1", input_shape=(100, 100, 3), num_classes=2)
    with pytest.raises(ValueError, match="grid_size=0"):
        build("yolo_v1", input_shape=(64, 64, 3), num_classes=2, grid_size=0)


def _hand_case():
    """S=2, B=2, C=2; one object in cell (row 0, col 0), hand-computed below.

    Truth: x=0.5, y=0.5 (cell units), w=0.36, h=0.16 (√: 0.6, 0.4), class 0.
    Box 1: x=0.1, y=0.1, √w=√h=0.2, conf 0.3 -> image x-range [0.03, 0.07] vs the truth's
           [0.07, 0.43]: IoU 0.
    Box 2: x=0.55, y=0.5, √w=0.6, √h=0.4, conf 0.8 -> x-range [0.095, 0.455]; overlap
           0.335 × 0.16 = 0.0536, union 2·0.0576 − 0.0536 = 0.0616, IoU 67/77. Responsible.
    Cell (0, 1) is empty and has confidences 0.2 and 0.4; its other outputs are ignored.
    """
    S, B, C = 2, 2, 2
    y_true = np.zeros((S, S, 5 + C), "float32")
    y_true[0, 0] = (0.5, 0.5, 0.36, 0.16, 1.0, 1.0, 0.0)
    y_pred = np.zeros((S, S, 5 * B + C), "float32")
    y_pred[0, 0] = (0.1, 0.1, 0.2, 0.2, 0.3, 0.55, 0.5, 0.6, 0.4, 0.8, 0.6, 0.4)
    y_pred[0, 1] = (0.7, 0.7, 0.7, 0.7, 0.2, 0.7, 0.7, 0.7, 0.7, 0.4, 0.9, 0.9)
    return y_true, y_pred


@pytest.mark.parametrize(
    "rescore, expected",
    [
        # coord 5·0.05² = 0.0125; object conf (0.8 − 1)² = 0.04; no-object: box 1 0.5·0.3² =
        # 0.045 and cell (0, 1) 0.5·(0.2² + 0.4²) = 0.1; classes (0.6 − 1)² + 0.4² = 0.32.
        (False, 0.0125 + 0.04 + 0.045 + 0.1 + 0.32),
        # The confidence target is the IoU 67/77: (0.8 − 67/77)² = (5.4/77)².
        (True, 0.0125 + (5.4 / 77) ** 2 + 0.045 + 0.1 + 0.32),
    ],
)
def test_loss_on_a_hand_computed_case(rescore, expected):
    y_true, y_pred = _hand_case()
    loss = YOLOv1Loss(boxes_per_cell=2, rescore=rescore)
    # Second image: nothing to find and nothing predicted -> loss 0; the batch mean halves.
    batch_true, batch_pred = np.stack([y_true, 0 * y_true]), np.stack([y_pred, 0 * y_pred])
    per_image = keras.ops.convert_to_numpy(loss.call(batch_true, batch_pred))
    np.testing.assert_allclose(per_image, [expected, 0.0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(loss(batch_true, batch_pred)), expected / 2, rtol=1e-5)


def test_responsible_box_is_the_highest_iou_not_the_first():
    y_true, y_pred = _hand_case()
    # Swapping the two boxes must not change the loss: the IoU, not the slot, picks the box.
    swapped = y_pred.copy()
    swapped[0, 0, :10] = np.concatenate([y_pred[0, 0, 5:10], y_pred[0, 0, :5]])
    loss = YOLOv1Loss(rescore=False)
    a = keras.ops.convert_to_numpy(loss.call(y_true[None], y_pred[None]))
    b = keras.ops.convert_to_numpy(loss.call(y_true[None], swapped[None]))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_lambdas_scale_their_terms():
    y_true, y_pred = _hand_case()
    base = YOLOv1Loss(rescore=False, lambda_coord=0.0, lambda_noobj=0.0)
    # Only object confidence and classes remain: 0.04 + 0.32.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(base.call(y_true[None], y_pred[None])), [0.36], rtol=1e-5
    )
    restored = YOLOv1Loss.from_config(YOLOv1Loss(lambda_coord=2.0).get_config())
    assert (restored.lambda_coord, restored.lambda_noobj, restored.rescore) == (2.0, 0.5, True)


def test_a_training_step_with_the_loss_is_finite():
    model = build("yolo_v1", input_shape=(64, 64, 3), num_classes=2, grid_size=2, **TINY)
    model.compile(optimizer="sgd", loss=YOLOv1Loss())
    y_true, _ = _hand_case()
    history = model.fit(np.ones((2, 64, 64, 3), "float32"), np.stack([y_true] * 2), verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_encode_targets_puts_the_box_in_its_centre_cell():
    target = encode_targets([[0.1, 0.6, 0.4, 0.9]], [1], grid_size=2, num_classes=3)
    # Centre (0.25, 0.75) -> grid (0.5, 1.5): row 1, col 0, offset (0.5, 0.5).
    np.testing.assert_allclose(target[1, 0], [0.5, 0.5, 0.3, 0.3, 1.0, 0.0, 1.0, 0.0], rtol=1e-6)
    assert target.sum() == pytest.approx(target[1, 0].sum())


def test_nms_on_a_hand_case():
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [2, 2, 3, 3], [0.5, 0, 1.5, 1]])
    scores = np.array([0.9, 0.8, 0.7, 0.85])
    # IoU with box 0: box 1 0.9/1.1 = 0.82 (dropped), box 3 0.5/1.5 = 0.33 (kept), box 2 0.
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5), [0, 3, 2])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.3), [0, 2])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5, max_outputs=2), [0, 3])
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0)).size == 0


def test_decode_predictions_scores_thresholds_and_suppresses_per_class():
    S, B, C = 2, 1, 2
    y = np.zeros((1, S, S, 5 * B + C), "float32")
    # A, cell (1, 0): centre (0.25, 0.75), 0.25 × 0.25 -> [0.125, 0.625, 0.375, 0.875];
    # score 0.9 · 0.8 = 0.72, class 1.
    y[0, 1, 0] = (0.5, 0.5, 0.5, 0.5, 0.9, 0.2, 0.8)
    # B, cell (0, 0): centre (0.25, 0.45), 0.25 × 0.64 -> y in [0.13, 0.77]; class 1, 0.64.
    # Overlap with A 0.25 × 0.145 = 0.03625, union 0.0625 + 0.16 − 0.03625: IoU 0.195.
    y[0, 0, 0] = (0.5, 0.9, 0.5, 0.8, 0.8, 0.2, 0.8)
    # Cell (0, 1): score 0.1 · 1.0 under the 0.2 threshold.
    y[0, 0, 1] = (0.5, 0.5, 0.5, 0.5, 0.1, 1.0, 0.0)
    # D, cell (1, 1): centre (0.5, 0.75), 0.64 × 0.25; class 0, 0.9 · 0.7 = 0.63. IoU with A
    # 0.04875 / 0.17375 = 0.28, but another class, so NMS leaves it.
    y[0, 1, 1] = (0.0, 0.5, 0.8, 0.5, 0.9, 0.7, 0.3)
    (loose,) = decode_predictions(y, boxes_per_cell=1, score_threshold=0.2, iou_threshold=0.5)
    np.testing.assert_allclose(loose["scores"], [0.72, 0.64, 0.63], rtol=1e-6)
    np.testing.assert_array_equal(loose["classes"], [1, 1, 0])
    np.testing.assert_allclose(loose["boxes"][0], [0.125, 0.625, 0.375, 0.875], rtol=1e-6)
    (tight,) = decode_predictions(y, boxes_per_cell=1, score_threshold=0.2, iou_threshold=0.1)
    np.testing.assert_allclose(tight["scores"], [0.72, 0.63], rtol=1e-6)
    np.testing.assert_array_equal(tight["classes"], [1, 0])
    # multi_label: D also counts as class 1 (0.9 · 0.3 = 0.27 >= 0.2; IoU 0.28 with A, 0.1
    # with B, so NMS keeps it); A's class 0 (0.18) stays under the threshold.
    (multi,) = decode_predictions(y, boxes_per_cell=1, score_threshold=0.2, multi_label=True)
    np.testing.assert_allclose(multi["scores"], [0.72, 0.64, 0.63, 0.27], rtol=1e-6)
    np.testing.assert_array_equal(multi["classes"], [1, 1, 0, 1])
    np.testing.assert_allclose(multi["boxes"][3], multi["boxes"][2])


@needs_tensorflow
def test_yolov8_wrapper_builds_forwards_and_reloads_without_weights(tmp_path):
    spec = get_spec("yolov8")
    assert spec.backend_agnostic is False and spec.kind == "detection"
    model = build("yolov8", input_shape=(64, 64, 3), num_classes=3, **spec.test_kwargs)
    out = model(np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32"))
    # Anchor points at strides 8, 16, 32: 8² + 4² + 2² = 84; 64 = 4 sides × 16 DFL bins.
    assert tuple(out["boxes"].shape) == (2, 84, 64)
    assert tuple(out["classes"].shape) == (2, 84, 3)
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = np.ones((1, 64, 64, 3), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x)["classes"]),
        keras.ops.convert_to_numpy(model(x)["classes"]), rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    with pytest.raises(ValueError, match="Unknown size='xxl'"):
        build("yolov8", input_shape=(64, 64, 3), num_classes=3, size="xxl")


def test_importing_the_zoo_does_not_import_keras_cv():
    code = "import sys, convflow.models.zoo; print('keras_cv' in sys.modules)"
    env_out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=os.environ,
    ).stdout  # fmt: skip
    assert env_out.split() == ["False"]


def test_small_stages_and_conv_head_for_cpu_scenes():
    dense = build("yolo_v1", input_shape=(64, 64, 1), num_classes=10, grid_size=4,
                  stages="small", width_multiplier=0.25, fc_units=16)  # fmt: skip
    conv = build("yolo_v1", input_shape=(64, 64, 1), num_classes=10, grid_size=4,
                 stages="small", head="conv", width_multiplier=0.25, fc_units=16)  # fmt: skip
    for model in (dense, conv):
        y = keras.ops.convert_to_numpy(model(np.zeros((2, 64, 64, 1), "float32")))
        assert y.shape == (2, 4, 4, 2 * 5 + 10)
        np.testing.assert_allclose(y[..., 10:].sum(-1), 1.0, rtol=1e-5)
    assert conv.get_layer("boxes").kernel.shape == (1, 1, 16, 10)  # 1×1 conv per cell
    with pytest.raises(ValueError, match="multiples of 16"):
        build("yolo_v1", input_shape=(72, 72, 1), num_classes=2, stages="small")
    with pytest.raises(ValueError, match="must equal grid_size=7"):
        build("yolo_v1", input_shape=(64, 64, 1), num_classes=2, stages="small", head="conv")
    with pytest.raises(ValueError, match="Unknown stages='tiny'"):
        build("yolo_v1", input_shape=(64, 64, 1), num_classes=2, stages="tiny")


def test_crossentropy_class_loss_on_the_hand_case():
    y_true, y_pred = _hand_case()
    loss = YOLOv1Loss(boxes_per_cell=2, rescore=False, class_loss="crossentropy")
    per_image = keras.ops.convert_to_numpy(loss.call(y_true[None], y_pred[None]))
    # the squared class error 0.32 becomes -log p(true class) = -log 0.6
    np.testing.assert_allclose(per_image, [0.0125 + 0.04 + 0.045 + 0.1 - np.log(0.6)], rtol=1e-5)
    assert YOLOv1Loss.from_config(loss.get_config()).class_loss == "crossentropy"
    # from_logits: the same loss on the class logits log(p) (softmax(log p) = p)
    logits = y_pred.copy()
    logits[..., 10:] = np.log(np.clip(y_pred[..., 10:], 1e-7, 1))
    on_logits = YOLOv1Loss(boxes_per_cell=2, rescore=False, class_loss="crossentropy",
                           from_logits=True)  # fmt: skip
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(on_logits.call(y_true[None], logits[None])), per_image,
        rtol=1e-5,
    )  # fmt: skip
