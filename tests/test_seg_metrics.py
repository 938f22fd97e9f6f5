"""Segmentation metrics against hand-computed cases and a plain NumPy reference; mask geometry
and colours; the overlay figure."""

from __future__ import annotations

import numpy as np
import pytest
from convflow.components import masks
from convflow.components.tasks import segmentation_metrics as SM
from convflow.components.tasks import segmentation_plots as seg_plots
from PIL import Image


def reference(y_true, y_pred, k):
    """IoU per class from boolean masks, one class at a time, ignore pixels dropped."""
    keep = y_true != 255
    t, p = y_true[keep], y_pred[keep]
    iou = []
    for c in range(k):
        union = ((t == c) | (p == c)).sum()
        iou.append(((t == c) & (p == c)).sum() / union if union else np.nan)
    iou = np.array(iou)
    freq = np.array([(t == c).mean() for c in range(k)])
    return {
        "pixel_accuracy": (t == p).mean(),
        "mean_iou": np.nanmean(iou),
        "fw_iou": np.nansum(freq * iou),
        "per_class": iou,
    }


def test_hand_case():
    # Five counted pixels (the 255 is ignored): class 0 -> [0, 1], class 1 -> [1, 1], 2 -> [2].
    y_true = np.array([[0, 0, 1], [1, 2, 255]])
    y_pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = SM.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(SM.per_class_iou(cm), [1 / 2, 2 / 3, 1.0])
    s = SM.scores(cm)
    assert s["pixel_accuracy"] == pytest.approx(4 / 5)
    assert s["mean_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert s["fw_iou"] == pytest.approx((2 * 1 / 2 + 2 * 2 / 3 + 1 * 1) / 5)
    assert s["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1) / 3)


def test_absent_class_has_no_iou_and_false_positive_class_scores_zero():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])  # class 2 only predicted, class 3 nowhere
    cm = SM.confusion_matrix(y_true, y_pred, 4)
    iou = SM.per_class_iou(cm)
    assert iou[2] == 0 and np.isnan(iou[3])
    assert SM.scores(cm)["mean_iou"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    table = SM.per_class(cm, ["a", "b", "c", "d"])
    assert table["d"] == {"recall": 0.0, "support": 0} and table["c"]["iou"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_matches_numpy_reference_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    y_true = rng.integers(0, k, (3, 17, 11)).astype(np.uint8)
    y_true[rng.random(y_true.shape) < 0.1] = 255
    y_pred = np.where(rng.random(y_true.shape) < 0.6, y_true, rng.integers(0, k, y_true.shape))
    y_pred = np.where(y_pred == 255, 0, y_pred)
    ref = reference(y_true, y_pred, k)
    cm = SM.confusion_matrix(y_true, y_pred, k)
    s = SM.scores(cm)
    assert cm.sum() == (y_true != 255).sum()
    for key in ("pixel_accuracy", "mean_iou", "fw_iou"):
        assert s[key] == pytest.approx(ref[key])
    np.testing.assert_allclose(SM.per_class_iou(cm), ref["per_class"])


def test_ignore_pixels_never_count_whatever_is_predicted_there():
    y_true = np.array([[1, 255], [0, 255]])
    good = SM.scores(SM.confusion_matrix(y_true, np.array([[1, 0], [0, 1]]), 2))
    other = SM.scores(SM.confusion_matrix(y_true, np.array([[1, 1], [0, 0]]), 2))
    assert good == other and good["mean_iou"] == 1.0
    assert np.isnan(
        SM.scores(SM.confusion_matrix(np.full((2, 2), 255), np.zeros((2, 2)), 2))["mean_iou"]
    )


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"true class 5 outside \[0, 3\)"):
        SM.confusion_matrix(np.array([5]), np.array([0]), 3)
    with pytest.raises(ValueError, match="true shape"):
        SM.confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)


@pytest.mark.parametrize("size", [(5, 5), (13, 29), (64, 64), (100, 7)])
def test_nearest_resize_invents_no_class_values(size):
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 2, 4, 9, 255], np.uint8), (2, 31, 23))
    out = masks.resize_nearest(mask, *size)
    assert out.shape == (2, *size) and out.dtype == np.uint8
    assert set(np.unique(out)) <= set(np.unique(mask))
    # Upsampling by an integer factor repeats each pixel; the round trip is exact.
    twice = masks.resize_nearest(mask, 62, 46)
    np.testing.assert_array_equal(twice[:, ::2, ::2], mask)
    np.testing.assert_array_equal(masks.resize_nearest(twice, 31, 23), mask)


def test_crop_matches_the_image_crop_offsets():
    mask = np.arange(5 * 8).reshape(5, 8)
    np.testing.assert_array_equal(masks.center_square_crop(mask), mask[:, 1:6])
    np.testing.assert_array_equal(masks.center_square_crop(mask.T), mask.T[1:6])


def test_palette_png_round_trip_and_colours(tmp_path):
    mask = np.array([[0, 1, 2], [10, 255, 1]], np.uint8)
    path = masks.save_palette_png(mask, tmp_path / "m.png")
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), mask)
    colours = masks.palette(256)
    assert colours[1].tolist() == [128, 0, 0] and colours[2].tolist() == [0, 128, 0]
    assert colours[255].tolist() == list(masks.IGNORE_COLOUR)
    image = np.full((2, 3, 1), 100, np.uint8)
    over = masks.overlay(image, mask)
    assert over[0, 0].tolist() == [100, 100, 100] and over[1, 1].tolist() == [100, 100, 100]
    assert over[0, 1].tolist() != [100, 100, 100]
    np.testing.assert_allclose(masks.class_shares(mask, 11)[[0, 1, 2, 10]], [0.2, 0.4, 0.2, 0.2])


def test_overlay_grid_and_iou_bars_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 16, 16, 1), np.uint8)
    truth = rng.integers(0, 3, (3, 16, 16)).astype(np.uint8)
    names = ["background", "a", "b"]
    grid = seg_plots.overlay_grid(images, truth, truth[::-1], names, tmp_path / "g.png")
    bars = seg_plots.iou_bars([0.9, np.nan, 0.4], names, tmp_path / "b.png")
    for path in (grid, bars):
        with Image.open(path) as im:
            assert im.size[0] > 100 and im.size[1] > 100
