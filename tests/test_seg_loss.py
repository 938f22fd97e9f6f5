"""The segmentation loss skips the ignore index; class and pixel weights; weight maps."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow.components.weight_maps import (
    class_pixel_counts,
    median_frequency_weights,
    unet_weight_map,
)
from convflow.models.segmentation_loss import MaskedSparseCrossEntropy


def numpy_ce(labels, logits, class_weights=None, pixel_weights=None):
    """Mean over non-ignore pixels of -log softmax, weighted."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    valid = labels != 255
    safe = np.where(valid, labels, 0)
    ce = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    w = valid.astype(np.float64)
    if class_weights is not None:
        w = w * np.asarray(class_weights)[safe]
    if pixel_weights is not None:
        w = w * pixel_weights
    return (ce * w).sum() / valid.sum()


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (2, 5, 6)).astype(np.int32)
    labels[0, :2] = 255
    logits = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    return labels, logits


def test_ignore_pixels_add_nothing(case):
    labels, logits = case
    loss = MaskedSparseCrossEntropy()
    value = float(loss(labels, logits))
    assert value == pytest.approx(numpy_ce(labels, logits), rel=1e-5)
    scrambled = logits.copy()
    scrambled[0, :2] = 100 * np.random.default_rng(1).normal(size=scrambled[0, :2].shape)
    assert float(loss(labels, scrambled)) == pytest.approx(value, rel=1e-6)
    # Gradient at ignore pixels is exactly zero (TensorFlow backend under test).
    import tensorflow as tf

    x = tf.Variable(logits)
    with tf.GradientTape() as tape:
        out = loss(labels, x)
    grad = tape.gradient(out, x).numpy()
    assert np.all(grad[0, :2] == 0) and np.abs(grad[1]).sum() > 0


def test_class_and_pixel_weights(case):
    labels, logits = case
    cw = [0.5, 1.0, 2.0, 4.0]
    pw = np.random.default_rng(2).uniform(0.5, 3, labels.shape).astype(np.float32)
    value = float(MaskedSparseCrossEntropy(class_weights=cw)(labels, logits, sample_weight=pw))
    assert value == pytest.approx(numpy_ce(labels, logits, cw, pw), rel=1e-5)
    # Labels with a trailing channel axis and probabilities instead of logits.
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    from_probs = MaskedSparseCrossEntropy(from_logits=False)(labels[..., None], probs)
    assert float(from_probs) == pytest.approx(numpy_ce(labels, logits), rel=1e-4)


def test_loss_round_trips_through_config():
    loss = MaskedSparseCrossEntropy(ignore_index=255, class_weights=[1.0, 2.0])
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MaskedSparseCrossEntropy)
    assert again.class_weights == [1.0, 2.0] and again.ignore_index == 255


def test_median_frequency_weights_by_hand():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2] = 1  # class 1: 8 pixels in one 16-pixel image -> freq 0.5
    masks[1, 0, 0] = 2  # class 2: 1 pixel in one 16-pixel image -> freq 1/16
    masks[1, 3, 3] = 255
    pixels, image_pixels = class_pixel_counts(masks, 4)
    np.testing.assert_array_equal(pixels, [22, 8, 1, 0])
    np.testing.assert_array_equal(image_pixels, [32, 16, 16, 0])
    w = median_frequency_weights(pixels, image_pixels)
    freq = np.array([22 / 32, 0.5, 1 / 16])
    np.testing.assert_allclose(w[:3], np.median(freq) / freq)
    assert w[3] == 0


def test_unet_weight_map_peaks_in_the_gap_between_objects():
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 2:12] = 1
    mask[5:15, 14:24] = 3  # a 2-pixel gap at columns 12, 13
    mask[0, 0] = 255
    w = unet_weight_map(mask, w0=10, sigma=5)
    assert w[0, 0] == 0 and np.all(w[mask == 1] == 1)
    gap, far = w[10, 12], w[10, 29]
    # d1 = 1, d2 = 2 in the gap: 1 + 10 exp(-9/50)
    assert gap == pytest.approx(1 + 10 * np.exp(-9 / 50), rel=1e-5)
    assert far < gap and far >= 1
    one = np.zeros((8, 8), np.uint8)
    one[2:4, 2:4] = 2
    assert np.all(unet_weight_map(one) == 1)
