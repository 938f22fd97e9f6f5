"""Tiled, locally connected and LRN layers against numpy references (Goodfellow et al. §9.5)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow.models.layers.locally_connected import LocallyConnected2D
from convflow.models.layers.lrn import LocalResponseNormalization
from convflow.models.layers.tiled import TiledConv2D

RNG = np.random.default_rng(0)
CASES = [  # (H, W, kernel, strides, padding)
    (7, 6, 3, 1, "valid"),
    (7, 6, 3, 2, "same"),
    (8, 8, (3, 2), (2, 1), "valid"),
    (5, 9, 2, 1, "same"),
]


def _reference(x, kernel_at, bias_at, k, s, padding):
    """Direct loops: y[b,i,j] = patch(i,j) · kernel_at(i,j) + bias_at(i,j)."""
    (kh, kw), (sh, sw) = (k, k) if isinstance(k, int) else k, (s, s) if isinstance(s, int) else s
    _, h, w, _ = x.shape
    if padding == "same":  # TF/Keras convention: the odd pixel of padding goes after
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)])
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    f = bias_at(0, 0).shape[-1]
    y = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            y[:, i, j] = np.einsum("bhwc,hwcf->bf", patch, kernel_at(i, j)) + bias_at(i, j)
    return y


def _conv(x, kernel, bias, k, s, padding):
    conv = keras.layers.Conv2D(kernel.shape[-1], k, s, padding)
    conv.build(x.shape)
    conv.set_weights([kernel, bias])
    return keras.ops.convert_to_numpy(conv(x))


@pytest.mark.parametrize("h, w, k, s, padding", CASES)
def test_tiled_with_one_tile_equals_conv2d(h, w, k, s, padding):
    x = RNG.normal(size=(2, h, w, 3)).astype("float32")
    layer = TiledConv2D(4, k, tile_size=1, strides=s, padding=padding)
    layer.build(x.shape)
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in (layer.kernel, layer.bias))
    bias = RNG.normal(size=bias.shape).astype("float32")
    layer.bias.assign(bias)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, _conv(x, kernel[0, 0], bias[0, 0], k, s, padding), atol=1e-5)


@pytest.mark.parametrize("h, w, k, s, padding", CASES)
@pytest.mark.parametrize("t", [2, 3])
def test_tiled_cycles_kernels_and_biases_through_positions(h, w, k, s, padding, t):
    x = RNG.normal(size=(2, h, w, 3)).astype("float32")
    layer = TiledConv2D(4, k, tile_size=t, strides=s, padding=padding, bias_initializer="normal")
    y = keras.ops.convert_to_numpy(layer(x))
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in (layer.kernel, layer.bias))
    want = _reference(
        x, lambda i, j: kernel[i % t, j % t], lambda i, j: bias[i % t, j % t], k, s, padding
    )
    np.testing.assert_allclose(y, want, atol=1e-4)
    assert layer.count_params() == t * t * (kernel[0, 0].size + 4)


def test_tiled_neighbours_differ_but_positions_t_apart_share_weights():
    # A constant image makes every patch equal: outputs depend only on (i mod t, j mod t).
    x = np.ones((1, 8, 8, 2), "float32")
    y = keras.ops.convert_to_numpy(TiledConv2D(3, 3, tile_size=2)(x))[0]
    np.testing.assert_allclose(y[0:2, 0:2], y[2:4, 4:6], atol=1e-6)
    assert not np.allclose(y[0, 0], y[0, 1])


@pytest.mark.parametrize("h, w, k, s, padding", CASES)
def test_locally_connected_with_shared_weights_equals_conv2d(h, w, k, s, padding):
    x = RNG.normal(size=(2, h, w, 3)).astype("float32")
    layer = LocallyConnected2D(4, k, strides=s, padding=padding)
    layer.build(x.shape)
    positions, fan_in, _ = layer.kernel.shape
    (oh, ow), kh = layer.out_hw, layer.kernel_size[0]
    kernel = RNG.normal(size=(fan_in, 4)).astype("float32")
    bias = RNG.normal(size=(4,)).astype("float32")
    layer.kernel.assign(np.broadcast_to(kernel, (positions, fan_in, 4)))
    layer.bias.assign(np.broadcast_to(bias, (oh, ow, 4)))
    conv_kernel = kernel.reshape(kh, -1, 3, 4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), _conv(x, conv_kernel, bias, k, s, padding), atol=1e-5
    )


@pytest.mark.parametrize("h, w, k, s, padding", CASES)
def test_locally_connected_uses_one_kernel_per_position(h, w, k, s, padding):
    x = RNG.normal(size=(2, h, w, 3)).astype("float32")
    layer = LocallyConnected2D(4, k, strides=s, padding=padding, bias_initializer="normal")
    y = keras.ops.convert_to_numpy(layer(x))
    (oh, ow), (kh, kw) = layer.out_hw, layer.kernel_size
    kernel = keras.ops.convert_to_numpy(layer.kernel).reshape(oh, ow, kh, kw, 3, 4)
    bias = keras.ops.convert_to_numpy(layer.bias)
    want = _reference(x, lambda i, j: kernel[i, j], lambda i, j: bias[i, j], k, s, padding)
    np.testing.assert_allclose(y, want, atol=1e-4)
    assert layer.count_params() == oh * ow * (kh * kw * 3 * 4 + 4)


@pytest.mark.parametrize("layer_cls", [TiledConv2D, LocallyConnected2D])
def test_layers_need_static_sizes_and_a_kernel_that_fits(layer_cls):
    with pytest.raises(ValueError, match="static height and width"):
        keras.Model(*(lambda i: (i, layer_cls(2, 3)(i)))(keras.Input((None, None, 1))))
    with pytest.raises(ValueError, match=r"does not fit input 2×2"):
        layer_cls(2, 3)(np.zeros((1, 2, 2, 1), "float32"))
    with pytest.raises(ValueError, match="padding='full'"):
        layer_cls(2, 3, padding="full")


@pytest.mark.parametrize(
    "layer",
    [
        TiledConv2D(5, (3, 2), tile_size=3, strides=2, padding="same", activation="relu"),
        LocallyConnected2D(5, 3, strides=(1, 2), use_bias=False, activation="tanh"),
        LocalResponseNormalization(size=3, alpha=1e-3, beta=0.5, k=1.0),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    x = RNG.normal(size=(1, 9, 9, 4)).astype("float32")
    y = layer(x)
    clone = type(layer).from_config(layer.get_config())
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y, atol=1e-6)
    assert keras.saving.serialize_keras_object(layer)["registered_name"].startswith("convflow>")


def test_lrn_matches_the_papers_formula():
    x = RNG.normal(size=(2, 3, 3, 7)).astype("float32")
    k, n, alpha, beta = 2.0, 5, 1e-2, 0.75
    want = np.empty_like(x)
    for c in range(7):
        window = x[..., max(0, c - n // 2) : min(7, c + n // 2 + 1)]
        want[..., c] = x[..., c] / (k + alpha * np.sum(window**2, axis=-1)) ** beta
    got = LocalResponseNormalization(size=n, alpha=alpha, beta=beta, k=k)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, rtol=1e-5)
    with pytest.raises(ValueError, match="size=4"):
        LocalResponseNormalization(size=4)
