"""Locally connected 2-D layer: a convolution whose weights are not shared across positions.

Goodfellow et al. 2016, §9.5 ("unshared convolution") and Fig. 9.14; LeCun 1986/1989 used it
before weight sharing. Keras 2 had ``LocallyConnected2D``; Keras 3 dropped it, so it is
rebuilt here from keras.ops alone (runs on TensorFlow, JAX and PyTorch).
"""

from __future__ import annotations

import keras
from keras import ops

PADDINGS = ("valid", "same")


def _pair(value, what):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{what}={value!r} must be a positive int or a pair of positive ints")
    return pair


def output_size(size, kernel, stride, padding):
    """Output length of one spatial axis, as for Conv2D (``padding`` 'valid' or 'same')."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def same_padding(size, kernel, stride):
    """(before, after) zero padding that makes a 'valid' window scan equal Conv2D's 'same'."""
    total = max((output_size(size, kernel, stride, "same") - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def extract_patches(x, kernel_size, strides, padding):
    """Every receptive field of a 2-D scan, flattened like a Conv2D kernel.

    Args:
        x: (B, H, W, C) tensor with static H and W.
        kernel_size: (kh, kw).
        strides: (sh, sw).
        padding: 'valid' or 'same' (Conv2D's meaning, including its asymmetric split).

    Returns:
        (B, OH, OW, kh·kw·C) tensor; the last axis is ordered (kh, kw, C), the order of a
        Conv2D kernel reshaped to (kh·kw·C, filters).
    """
    (kh, kw), (sh, sw) = kernel_size, strides
    h, w = x.shape[1], x.shape[2]
    oh, ow = output_size(h, kh, sh, padding), output_size(w, kw, sw, padding)
    if padding == "same":
        x = ops.pad(x, [(0, 0), same_padding(h, kh, sh), same_padding(w, kw, sw), (0, 0)])
    # kh·kw strided slices instead of a backend patch op: the ordering is then ours to fix
    # and identical on every backend.
    taps = [
        x[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = ops.stack(taps, axis=3)  # (B, OH, OW, kh·kw, C)
    return ops.reshape(patches, (-1, oh, ow, kh * kw * x.shape[-1]))


def check_spatial(input_shape, kernel_size, strides, padding, layer):
    """Output (OH, OW) for a static input; errors name the layer and the bad size."""
    h, w = input_shape[1], input_shape[2]
    if h is None or w is None:
        raise ValueError(
            f"{layer} needs a static height and width; got input shape {tuple(input_shape)}"
        )
    oh = output_size(h, kernel_size[0], strides[0], padding)
    ow = output_size(w, kernel_size[1], strides[1], padding)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{layer} kernel {kernel_size} does not fit input {h}×{w} with padding={padding!r}"
        )
    return oh, ow


class PatchConv2D(keras.layers.Layer):
    """Shared settings of the convolutions built on :func:`extract_patches` (locally
    connected and tiled): arguments, output shape and config."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters={filters!r} must be a positive int")
        if padding not in PADDINGS:
            raise ValueError(f"Unknown padding={padding!r}; expected 'valid' or 'same'")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        oh, ow = check_spatial(input_shape, self.kernel_size, self.strides, self.padding, self.name)
        return (input_shape[0], oh, ow, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="convflow")
class LocallyConnected2D(PatchConv2D):
    """2-D locally connected layer: one kernel per output position (no weight sharing).

    Output ``y[b, i, j, f] = act(sum_k patch[b, i, j, k] · W[i, j, k, f] + bias[i, j, f])``.
    Parameters: ``OH·OW·(kh·kw·C·filters + filters)`` — a Conv2D's count times the number of
    output positions, which is why it needs a static input size.

    Args:
        filters: output channels.
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw).
        padding: 'valid' or 'same'.
        activation: any keras activation.
        use_bias: adds an unshared bias per position and filter.
        kernel_initializer, bias_initializer: keras initializers.
    """

    def build(self, input_shape):
        oh, ow = check_spatial(input_shape, self.kernel_size, self.strides, self.padding, self.name)
        fan_in = self.kernel_size[0] * self.kernel_size[1] * input_shape[-1]
        self.out_hw = (oh, ow)
        # (positions, fan_in, filters): each position's slice has a Conv2D kernel's fan in and
        # fan out, so glorot/he initializers see the same variance as in a convolution.
        self.kernel = self.add_weight(
            name="kernel",
            shape=(oh * ow, fan_in, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(
                name="bias", shape=(oh, ow, self.filters), initializer=self.bias_initializer
            )
            if self.use_bias
            else None
        )

    def call(self, inputs):
        patches = extract_patches(inputs, self.kernel_size, self.strides, self.padding)
        oh, ow = self.out_hw
        flat = ops.reshape(patches, (-1, oh * ow, patches.shape[-1]))
        y = ops.reshape(ops.einsum("bpk,pkf->bpf", flat, self.kernel), (-1, oh, ow, self.filters))
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)
