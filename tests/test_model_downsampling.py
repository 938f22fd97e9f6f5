"""LeNet-5's S2/S4 downsampling knob (the pooling sweep's variable): max, avg, strided conv."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow.models.lenet import LeNet5
from keras import layers


@pytest.mark.parametrize(
    ("kind", "layer_type"),
    [("max", layers.MaxPooling2D), ("avg", layers.AveragePooling2D), ("strided", layers.Conv2D)],
)
def test_downsampling_picks_the_s2_s4_layers_and_keeps_the_shapes(kind, layer_type):
    model = LeNet5((28, 28, 1), 10, filters=(6, 16), downsampling=kind)
    for name in ("s2_pool", "s4_pool"):
        layer = model.get_layer(name)
        assert type(layer) is layer_type
        assert layer.output.shape[1:] == {"s2_pool": (14, 14, 6), "s4_pool": (5, 5, 16)}[name]
    scores = model.predict(np.random.default_rng(0).random((2, 28, 28, 1)), verbose=0)
    assert scores.shape == (2, 10) and np.isfinite(scores).all()


def test_strided_downsampling_adds_exactly_two_learned_2x2_convolutions():
    pooled = LeNet5((28, 28, 1), 10, filters=(6, 16)).count_params()
    strided = LeNet5((28, 28, 1), 10, filters=(6, 16), downsampling="strided").count_params()
    assert strided - pooled == (2 * 2 * 6 * 6 + 6) + (2 * 2 * 16 * 16 + 16)


def test_average_pooling_averages_the_2x2_window():
    model = LeNet5((28, 28, 1), 10, downsampling="avg")
    features = model.get_layer("c1_conv").output
    probe = keras.Model(model.input, [features, model.get_layer("s2_pool").output])
    c1, s2 = probe.predict(np.random.default_rng(1).random((1, 28, 28, 1)), verbose=0)
    np.testing.assert_allclose(s2[0, 0, 0], c1[0, :2, :2].mean(axis=(0, 1)), rtol=1e-5)


def test_bad_downsampling_names_the_value():
    with pytest.raises(ValueError, match=r"Unknown downsampling='mean'"):
        LeNet5((28, 28, 1), 10, downsampling="mean")
    with pytest.raises(ValueError, match="downsampling='avg' is for variant='modern'"):
        LeNet5((32, 32, 1), 10, variant="lecun1998", downsampling="avg")
