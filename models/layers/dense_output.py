"""Per-pixel outputs back at the input image's size, for served segmentation models.

A served segmentation model resizes (and maybe centre-crops) the raw image to the network's
square input; its scores are then at the network's size. :class:`ScoresToImageSize` maps
them back onto the raw image's pixel grid: scores are resized bilinearly to the crop's side
and put where the crop came from; pixels outside the crop (only when cropping) take the
scores of the nearest crop pixel. :class:`ClassMap` is the arg-max over the class axis.
"""

from __future__ import annotations

import keras
from keras import ops


def _resize_axis(x, size, axis):
    """Bilinear resize of one axis to a (possibly symbolic) ``size``, half-pixel centres.

    ``keras.ops.image.resize`` needs a static size; the raw image's size is only known when
    the served model runs, so the two-tap interpolation is written out with gathers.
    """
    n_in = ops.shape(x)[axis]
    scale = ops.cast(n_in, "float32") / ops.cast(size, "float32")
    pos = (ops.cast(ops.arange(size), "float32") + 0.5) * scale - 0.5
    pos = ops.clip(pos, 0.0, ops.cast(n_in - 1, "float32"))
    lo = ops.cast(ops.floor(pos), "int32")
    hi = ops.minimum(lo + 1, n_in - 1)
    frac = pos - ops.cast(lo, "float32")
    frac = ops.reshape(frac, [-1 if d == axis else 1 for d in range(4)])
    a, b = ops.take(x, lo, axis=axis), ops.take(x, hi, axis=axis)
    return a + (b - a) * frac


def resize_bilinear(scores, height, width):
    """``(B, h, w, K)`` -> ``(B, height, width, K)`` float32; sizes may be symbolic."""
    scores = ops.cast(scores, "float32")
    return _resize_axis(_resize_axis(scores, height, 1), width, 2)


@keras.saving.register_keras_serializable(package="convflow")
class ScoresToImageSize(keras.layers.Layer):
    """``[scores (B, h, w, K), image (B, H, W, C)] -> scores (B, H, W, K)`` float32.

    Args:
        cropped: the image was centre-cropped to ``min(H, W)`` before resizing (as
            ``CenterSquareCrop`` does: top = (H - side) // 2, left = (W - side) // 2).
    """

    def __init__(self, cropped: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.cropped = bool(cropped)

    def call(self, inputs):
        scores, image = inputs
        shape = ops.shape(image)
        height, width = shape[1], shape[2]
        if not self.cropped:
            return resize_bilinear(scores, height, width)
        side = ops.minimum(height, width)
        square = resize_bilinear(scores, side, side)
        top, left = (height - side) // 2, (width - side) // 2
        rows = ops.clip(ops.arange(height) - top, 0, side - 1)
        cols = ops.clip(ops.arange(width) - left, 0, side - 1)
        return ops.take(ops.take(square, rows, axis=1), cols, axis=2)

    def compute_output_shape(self, input_shapes):
        scores, image = input_shapes
        return (scores[0], image[1], image[2], scores[3])

    def get_config(self):
        return {**super().get_config(), "cropped": self.cropped}


@keras.saving.register_keras_serializable(package="convflow")
class ClassMap(keras.layers.Layer):
    """``scores (B, H, W, K) -> int32 class indices (B, H, W)`` (arg-max, first on ties)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)

    def call(self, scores):
        return ops.cast(ops.argmax(scores, axis=-1), "int32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, scores):
        return keras.KerasTensor(scores.shape[:-1], dtype="int32")
