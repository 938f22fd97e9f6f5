"""Box conventions and geometry against boxes computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from convflow.components import boxes as B


def test_edge_conversions_by_hand():
    # COCO [x, y, w, h] = [10, 20, 30, 40] px in a 100 (h) x 200 (w) image.
    np.testing.assert_allclose(B.from_coco([10, 20, 30, 40], 100, 200), [0.2, 0.05, 0.6, 0.2])
    # VOC 1-based inclusive: pixels 11..40 wide, 21..60 high -> [10, 40) x [20, 60).
    np.testing.assert_allclose(B.from_voc(11, 21, 40, 60, 100, 200), [0.2, 0.05, 0.6, 0.2])
    # YOLO centre (0.125, 0.4), size (0.15, 0.4).
    np.testing.assert_allclose(
        B.from_yolo(0.125, 0.4, 0.15, 0.4, 100, 200), [0.2, 0.05, 0.6, 0.2], atol=1e-6
    )
    stored = np.array([[0.2, 0.05, 0.6, 0.2]])
    np.testing.assert_allclose(B.to_pixel_xyxy(stored, 100, 200), [[10, 20, 40, 60]], atol=1e-4)
    np.testing.assert_allclose(B.to_coco_xywh(stored, 100, 200), [[10, 20, 30, 40]], atol=1e-4)


@pytest.mark.parametrize(
    ("bbox", "reason"),
    [
        ([10, 20, 0, 40], "non-positive size"),
        ([10, 20, -5, 40], "non-positive size"),
        ([190, 20, 30, 40], "outside"),
        ([-10, 20, 5, 40], "outside"),
        ([10, 20, "x", 40], "is not [x, y, w, h]"),
    ],
)
def test_bad_boxes_name_the_reason(bbox, reason):
    with pytest.raises(B.BadBox, match=reason.replace("[", r"\[").replace("]", r"\]")):
        B.from_coco(bbox, 100, 200)


def test_box_within_tolerance_is_clipped():
    # 0.5 px past the right edge (common in VOC/COCO) is clipped, not rejected.
    np.testing.assert_allclose(B.from_coco([150, 0, 50.5, 100], 100, 200), [0, 0.75, 1, 1])


def test_center_crop_of_a_wide_image_by_hand():
    # 100 x 200 image -> crop columns 50..150 (top 0, left 50, side 100).
    t = B.BoxTargets.of(
        [
            [0.2, 0.30, 0.6, 0.40],  # x 60..80 px  -> 10..30 in the crop
            [0.1, 0.20, 0.5, 0.30],  # x 40..60 px  -> clipped to 0..10
            [0.0, 0.00, 1.0, 0.20],  # x 0..40 px   -> cropped away, dropped
            [0.5, 0.70, 0.9, 0.90],  # x 140..180   -> 90..100, clipped
        ],
        [0, 1, 2, 3],
        [False, True, False, False],
    )
    out, dropped = B.center_crop(t, 100, 200)
    assert dropped == 1
    np.testing.assert_allclose(
        out.boxes,
        [[0.2, 0.1, 0.6, 0.3], [0.1, 0.0, 0.5, 0.1], [0.5, 0.9, 0.9, 1.0]],
        atol=1e-6,
    )
    assert out.classes.tolist() == [0, 1, 3]
    assert out.ignore.tolist() == [False, True, False]


def test_center_crop_of_a_tall_odd_image_matches_the_pixel_crop():
    # 7 x 4 image: top = (7 - 4) // 2 = 1, as contrast.center_square_crop drops the extra
    # row at the bottom. Rows 2..4 px (y 2/7..5/7) -> crop rows 1..4 -> y 0.25..1.0.
    t = B.BoxTargets.of([[2 / 7, 0.0, 5 / 7, 0.5]], [4])
    out, dropped = B.center_crop(t, 7, 4)
    assert dropped == 0
    np.testing.assert_allclose(out.boxes, [[0.25, 0.0, 1.0, 0.5]], atol=1e-6)


def test_square_resize_keeps_normalized_boxes_and_flip_mirrors():
    t = B.BoxTargets.of([[0.1, 0.2, 0.5, 0.6]], [1])
    out, dropped = B.center_crop(t, 64, 64)  # already square: unchanged
    assert dropped == 0 and out.boxes.tolist() == t.boxes.tolist()
    np.testing.assert_allclose(B.flip_horizontal(t).boxes, [[0.1, 0.4, 0.5, 0.8]], atol=1e-6)
    np.testing.assert_allclose(B.flip_vertical(t).boxes, [[0.5, 0.2, 0.9, 0.6]], atol=1e-6)
    np.testing.assert_allclose(B.flip_horizontal(B.flip_horizontal(t)).boxes, t.boxes, atol=1e-6)


def test_crop_then_back_to_input_pixels_round_trips():
    # A box fully inside the crop of a 100 x 200 image comes back to the same pixels.
    px = np.array([[70.0, 10.0, 120.0, 90.0]])  # x1, y1, x2, y2
    stored = B.BoxTargets.of(
        B.pixel_corners_to_normalized(*px[0], height=100, width=200)[None], [0]
    )
    cropped, _ = B.center_crop(stored, 100, 200)
    np.testing.assert_allclose(B.to_input_pixels(cropped.boxes, 100, 200), px, atol=1e-3)


def test_crop_to_any_window_by_hand():
    # 40 x 80 image, window rows 10..30, columns 20..60 (20 x 40).
    t = B.BoxTargets.of([[0.25, 0.5, 0.5, 0.75], [0.0, 0.0, 0.2, 0.2]], [3, 4])
    out, dropped = B.crop(t, 40, 80, 10, 20, 20, 40)
    # rows 10..20 px -> 0..10 of 20; columns 40..60 px -> 20..40 of 40; box 2 lies outside.
    np.testing.assert_allclose(out.boxes, [[0.0, 0.5, 0.5, 1.0]], atol=1e-6)
    assert dropped == 1 and out.classes.tolist() == [3]
