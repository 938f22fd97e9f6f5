"""Tiled 2-D convolution: t×t kernels rotated through the output positions.

Gregor & LeCun 2010 ("Emergence of complex-like cells in a temporal product network with
local receptive fields") and Le et al. 2010 ("Tiled convolutional neural networks");
Goodfellow et al. 2016, §9.5 and Fig. 9.16. It sits between a convolution (t = 1: one kernel
everywhere) and a locally connected layer (t ≥ output size: a kernel per position). Neighbouring
outputs use different filters, so pooling over them can learn invariances other than
translation, with only t² times a convolution's parameters.
"""

from __future__ import annotations

import keras
from convflow.models.layers.locally_connected import PatchConv2D, check_spatial, extract_patches
from keras import ops


@keras.saving.register_keras_serializable(package="convflow")
class TiledConv2D(PatchConv2D):
    """Output position (i, j) uses kernel ``(i mod t, j mod t)`` of a t×t set of kernels.

    ``y[b, i, j, f] = act(sum_k patch[b, i, j, k] · W[i%t, j%t, k, f] + bias[i%t, j%t, f])``;
    the bias is tiled with the same pattern as the kernels. Parameters:
    ``t²·(kh·kw·C·filters + filters)``. With ``tile_size=1`` this is exactly Conv2D.

    Args:
        filters: output channels.
        kernel_size: int or (kh, kw).
        tile_size: t, the number of kernels cycled through along each spatial axis.
        strides: int or (sh, sw).
        padding: 'valid' or 'same'.
        activation: any keras activation.
        use_bias: adds a bias tiled like the kernels.
        kernel_initializer, bias_initializer: keras initializers.
    """

    def __init__(self, filters, kernel_size, tile_size=2, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if not isinstance(tile_size, int) or tile_size < 1:
            raise ValueError(f"tile_size={tile_size!r} must be a positive int")
        self.tile_size = tile_size

    def build(self, input_shape):
        self.out_hw = check_spatial(
            input_shape, self.kernel_size, self.strides, self.padding, self.name
        )
        t, (kh, kw) = self.tile_size, self.kernel_size
        # (t, t, kh, kw, C, F): kernel [a, b] is an ordinary Conv2D kernel, so initializers
        # compute the fan in/out of one convolution.
        self.kernel = self.add_weight(
            name="kernel",
            shape=(t, t, kh, kw, input_shape[-1], self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(
                name="bias", shape=(t, t, self.filters), initializer=self.bias_initializer
            )
            if self.use_bias
            else None
        )

    def call(self, inputs):
        t, (oh, ow) = self.tile_size, self.out_hw
        patches = extract_patches(inputs, self.kernel_size, self.strides, self.padding)
        k = patches.shape[-1]
        # Pad the output grid to whole tiles, then fold it into (tile row, offset a, tile col,
        # offset b): every output is computed once, by the kernel its offsets select.
        rows, cols = -(-oh // t), -(-ow // t)
        patches = ops.pad(patches, [(0, 0), (0, rows * t - oh), (0, cols * t - ow), (0, 0)])
        patches = ops.reshape(patches, (-1, rows, t, cols, t, k))
        kernel = ops.reshape(self.kernel, (t, t, k, self.filters))
        y = ops.einsum("nxaybk,abkf->nxaybf", patches, kernel)
        if self.use_bias:
            y = y + ops.reshape(self.bias, (1, 1, t, 1, t, self.filters))
        y = ops.reshape(y, (-1, rows * t, cols * t, self.filters))[:, :oh, :ow, :]
        return self.activation(y)

    def get_config(self):
        return {**super().get_config(), "tile_size": self.tile_size}
