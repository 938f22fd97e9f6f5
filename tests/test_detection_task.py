"""The detection task: record checks, boxes through the preprocess window, the served
post-processing (boxes back in each input's pixels) and the predict line."""

from __future__ import annotations

import keras
import numpy as np
from convflow.components.boxes import BoxTargets
from convflow.components.targets import Window
from convflow.components.tasks.detection import Detection, columns_of, targets_of
from convflow.components.tasks.detection_eval import class_softmax
from convflow.components.tasks.detection_serving import YoloV1Detections, rows_to_detections
from convflow.models.yolo import decode_predictions

TASK = Detection()


def _target(boxes, classes, ignore=None):
    t = BoxTargets.of(boxes, classes, ignore)
    return {"boxes": t.boxes, "classes": t.classes, "ignore": t.ignore.astype(np.int64)}


def test_check_target_names_what_is_wrong():
    assert TASK.check_target(_target([[0.1, 0.1, 0.5, 0.5]], [2]), (8, 8, 1), 3) is None
    assert TASK.check_target(_target(np.zeros((0, 4)), []), (8, 8, 1), 3) is None  # negative
    assert "outside [0, 1]" in TASK.check_target(_target([[0.1, 0.1, 1.5, 0.5]], [0]), (8, 8, 1), 3)
    assert "non-positive" in TASK.check_target(_target([[0.5, 0.1, 0.5, 0.5]], [0]), (8, 8, 1), 3)
    assert "class 3 outside [0, 3)" in TASK.check_target(_target([[0, 0, 1, 1]], [3]), (8, 8, 1), 3)


def test_move_targets_through_a_centre_crop_window_drops_and_keeps_columns():
    # 100 x 200 image -> centre square (left 50, side 100) -> resized to 64.
    cols = columns_of([
        BoxTargets.of([[0.2, 0.30, 0.6, 0.40], [0.0, 0.0, 1.0, 0.2]], [0, 2]),
        BoxTargets.empty(),
    ])  # fmt: skip
    window = Window(100, 200, 0, 50, 100, 100, 64, 64)
    moved = TASK.move_targets(cols, window)
    first = targets_of(moved, 0)
    np.testing.assert_allclose(first.boxes, [[0.2, 0.1, 0.6, 0.3]], atol=1e-6)
    assert first.classes.tolist() == [0] and len(targets_of(moved, 1)) == 0


def _hand_output():
    """Two cells of S=2, B=1, C=2 (see test_model_yolo's decode case)."""
    y = np.zeros((1, 2, 2, 7), "float32")
    y[0, 1, 0] = (0.5, 0.5, 0.5, 0.5, 0.9, 0.2, 0.8)  # [0.125..0.375] x, [0.625..0.875] y
    y[0, 1, 1] = (0.0, 0.5, 0.8, 0.5, 0.9, 0.7, 0.3)
    return y


def test_served_boxes_are_in_each_inputs_pixels_for_two_sizes():
    y = _hand_output()
    # The network ends in class logits; the served layer applies the softmax itself.
    probs = class_softmax(y, 1)
    (ref,) = decode_predictions(probs, boxes_per_cell=1, score_threshold=0.2, multi_label=True)
    assert len(ref["scores"]) >= 2
    layer = YoloV1Detections(boxes_per_cell=1, score_threshold=0.2, max_detections=5, crop=True)
    for height, width, top, left, side in ((100, 200, 0, 50, 100), (90, 61, 14, 0, 61)):
        rows = keras.ops.convert_to_numpy(layer(np.zeros((1, height, width, 1), np.uint8), y))
        d = rows_to_detections(rows[0])
        x1, y1, x2, y2 = ref["boxes"].T  # normalized x1, y1, x2, y2 of the square
        want = np.stack([left + x1 * side, top + y1 * side, left + x2 * side, top + y2 * side], 1)
        np.testing.assert_allclose(d["boxes"], want, atol=1e-3)
        np.testing.assert_allclose(d["scores"], ref["scores"], rtol=1e-5)
        assert d["classes"].tolist() == ref["classes"].tolist()
        assert rows.shape == (1, 5, 6) and (rows[0, len(ref["scores"]) :, 5] == -1).all()


def test_describe_prediction_one_line_per_box():
    rows = np.array([[1, 2, 30, 40, 0.9, 1], [0, 0, 0, 0, 0, -1]], np.float32)
    assert TASK.describe_prediction(rows, ["a", "b"]) == "b\t0.9000\t1.0,2.0,30.0,40.0"
    assert TASK.describe_prediction(rows[1:], ["a", "b"]) == "no boxes"
