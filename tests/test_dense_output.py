"""Served segmentation outputs at the raw image's size: bilinear resize, crop undone."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow.models.layers.dense_output import ClassMap, ScoresToImageSize, resize_bilinear


@pytest.mark.parametrize("size", [(16, 16), (13, 29), (8, 8), (5, 3)])
def test_resize_matches_tf_image_resize(size):
    import tensorflow as tf

    scores = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(resize_bilinear(scores, *size))
    ref = tf.image.resize(scores, size, method="bilinear", antialias=False).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_crop_is_undone_and_margins_take_the_nearest_crop_pixel():
    image = keras.Input((None, None, 1), dtype="uint8")
    scores = keras.Input((4, 4, 2))
    out = ClassMap()(ScoresToImageSize(cropped=True)([scores, image]))
    model = keras.Model([scores, image], out)
    s = np.zeros((1, 4, 4, 2), np.float32)
    s[0, :, :2, 1] = 1.0  # left half class 1, right half class 0
    s[..., 0] = 1.0 - s[..., 1]
    got = model.predict([s, np.zeros((1, 8, 14, 1), np.uint8)], verbose=0)
    assert got.shape == (1, 8, 14) and got.dtype == np.int32
    # The 8x8 crop sits at columns 3..10; its left half (3..6) is class 1, and the margin
    # columns 0..2 repeat column 3.
    expected = np.zeros((8, 14), np.int32)
    expected[:, :7] = 1
    np.testing.assert_array_equal(got[0], expected)
    tall = model.predict([s, np.zeros((1, 12, 8, 1), np.uint8)], verbose=0)
    assert tall.shape == (1, 12, 8) and (tall[0, :, :4] == 1).all()


def test_layers_round_trip_through_config():
    layer = ScoresToImageSize(cropped=True, name="to_image")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, ScoresToImageSize) and again.cropped
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(ClassMap())), ClassMap)
