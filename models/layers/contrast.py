"""Image preprocessing from the lecture's "Preprocessing" slide, as keras.ops functions and layers.

Goodfellow et al., *Deep Learning* (2016), §12.2.1.1: images are scaled to one range, cropped to
one (square) aspect ratio and resized, then normalized per image by global contrast normalization
(GCN, eq. 12.3) or per local region by local contrast normalization (LCN; Jarrett et al., 2009,
"What is the best multi-stage architecture for object recognition?").

This module is the one implementation. The functions take and return ``(N, H, W, C)`` tensors
(numpy arrays work too), so the Apache Beam job in ``components/preprocess`` calls them on whole
batches, and the layers below wrap them unchanged inside the served model. That is why Beam's
output and the model's built-in preprocessing agree to float32 rounding.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")
_SERIAL_PACKAGE = "convflow"


def scale_to_unit(images):
    """Maps pixels to [0, 1] as float32: uint8 is divided by 255, floats are taken as is."""
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        return ops.cast(images, "float32") / 255.0
    return ops.cast(images, "float32")


def center_square_crop(images):
    """Crops the centred ``side × side`` square, ``side = min(H, W)`` (aspect ratio 1:1).

    Works on dynamic shapes, so the served model accepts images of any size. When the excess
    is odd the extra row/column is dropped at the bottom/right: ``top = (H - side) // 2``.
    """
    shape = ops.shape(images)
    height, width = shape[1], shape[2]
    if isinstance(height, int) and isinstance(width, int) and height == width:
        return images
    side = ops.minimum(height, width)
    top = (height - side) // 2
    left = (width - side) // 2
    return ops.slice(images, [0, top, left, 0], [shape[0], side, side, shape[3]])


def resize(images, size: int, interpolation: str = "bilinear", antialias: bool = True):
    """Resizes to ``size × size`` (sampling at pixel centres, as ``tf.image.resize`` does).

    ``antialias`` low-pass filters when shrinking, so large photos do not alias down to 28 px;
    at equal or larger sizes it changes nothing.
    """
    height, width = ops.shape(images)[1:3]
    if isinstance(height, int) and height == size and width == size:
        return ops.cast(images, "float32")  # same grid: every sample lands on a pixel centre
    out = ops.image.resize(
        images,
        (size, size),
        interpolation=interpolation,
        antialias=antialias,
        data_format="channels_last",
    )
    return ops.cast(out, "float32")


def global_contrast_normalize(images, scale: float = 1.0, lam: float = 0.0, eps: float = 1e-8):
    """GCN, eq. 12.3: ``X' = s (X - mean) / max(eps, sqrt(lam + mean((X - mean)^2)))``.

    Mean and contrast are taken over all pixels and channels of each image. The first pixel is
    subtracted before averaging (an exact shift that leaves the result unchanged): a constant
    image then centres to exact zeros, where the float32 mean of a constant can miss it by one
    ulp and the division by ``eps`` would blow that rounding up to ±1.
    """
    x = ops.cast(images, "float32")
    x = x - x[:, :1, :1, :1]
    centred = x - ops.mean(x, axis=(1, 2, 3), keepdims=True)
    contrast = ops.sqrt(lam + ops.mean(ops.square(centred), axis=(1, 2, 3), keepdims=True))
    return scale * centred / ops.maximum(eps, contrast)


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """A normalized 1-D Gaussian window; the 2-D window is its outer product (separable)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"LCN kernel_size={size!r} must be a positive odd number")
    if not sigma > 0:
        raise ValueError(f"LCN sigma={sigma!r} must be > 0")
    r = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-0.5 * (r / sigma) ** 2)
    return (g / g.sum()).astype("float32")


def _local_mean(x, kernel_h, kernel_w, weight):
    blurred = ops.conv(x, kernel_h, padding="same", data_format="channels_last")
    blurred = ops.conv(blurred, kernel_w, padding="same", data_format="channels_last")
    return blurred / weight


def local_contrast_normalize(images, kernel_size: int = 9, sigma: float = 2.0, floor: float = 1e-4):
    """LCN (Jarrett et al., 2009): subtractive, then divisive normalization, channels apart.

    ``v = x - G*x``; ``σ = sqrt(G*v²)``; ``y = v / max(c, σ, floor)`` with ``G`` a normalized
    Gaussian window and ``c`` the image's (per channel) mean of ``σ``, so flat regions are not
    amplified into noise.

    Borders: the window is renormalized to the pixels inside the image (normalized
    convolution: ``G*x / G*1``). Zero padding would pull the local mean towards 0 near the
    edges and darken them; reflection would invent structure. Renormalizing uses only real
    pixels, and because ``G`` is separable and the image is a rectangle it stays separable.
    """
    kernel = gaussian_kernel_1d(kernel_size, sigma)
    kernel_h = ops.convert_to_tensor(kernel.reshape(kernel_size, 1, 1, 1))
    kernel_w = ops.convert_to_tensor(kernel.reshape(1, kernel_size, 1, 1))
    x = ops.cast(images, "float32")
    shape = ops.shape(x)
    # Channels become batch entries, so one single-channel conv handles them separately.
    planes = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (-1, shape[1], shape[2], 1))
    ones = ops.ones_like(planes[:1])
    weight = ops.conv(ones, kernel_h, padding="same", data_format="channels_last")
    weight = ops.conv(weight, kernel_w, padding="same", data_format="channels_last")
    centred = planes - _local_mean(planes, kernel_h, kernel_w, weight)
    local_var = _local_mean(ops.square(centred), kernel_h, kernel_w, weight)
    sigma_local = ops.sqrt(ops.maximum(local_var, 0.0))
    c = ops.mean(sigma_local, axis=(1, 2, 3), keepdims=True)
    out = centred / ops.maximum(ops.maximum(sigma_local, c), floor)
    out = ops.reshape(out, (shape[0], shape[3], shape[1], shape[2]))
    return ops.transpose(out, (0, 2, 3, 1))


def standardize(images, mean, std):
    """Per-channel dataset standardization ``(x - mean) / std`` with training-split stats."""
    mean = ops.convert_to_tensor(np.asarray(mean, "float32"))
    std = ops.convert_to_tensor(np.asarray(std, "float32"))
    return (ops.cast(images, "float32") - mean) / std


class _Preprocessing(keras.layers.Layer):
    """Base: a stateless, non-trainable wrapper around one function above.

    The dtype defaults to float32 whatever the global policy: under ``mixed_bfloat16`` the
    served model must still compute exactly what the float32 Beam job wrote.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class UnitScale(_Preprocessing):
    """Scales uint8 pixels to [0, 1] float32; see :func:`scale_to_unit`."""

    def call(self, images):
        return scale_to_unit(images)


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class CenterSquareCrop(_Preprocessing):
    """Centre crop to a square; see :func:`center_square_crop`. Any input H, W."""

    def call(self, images):
        return center_square_crop(images)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        side = None if h is None or w is None else min(h, w)
        return (n, side, side, c)


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class SquareResize(_Preprocessing):
    """Resize to ``size × size``; see :func:`resize`.

    Args:
        size: output height and width.
        interpolation: one of ``INTERPOLATIONS``.
        antialias: low-pass filter when shrinking.
    """

    def __init__(self, size: int, interpolation: str = "bilinear", antialias: bool = True, **kw):
        super().__init__(**kw)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"Unknown interpolation={interpolation!r}; expected {INTERPOLATIONS}")
        self.size, self.interpolation, self.antialias = int(size), interpolation, bool(antialias)

    def call(self, images):
        return resize(images, self.size, self.interpolation, self.antialias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "interpolation": self.interpolation,
            "antialias": self.antialias,
        }


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class GlobalContrastNormalization(_Preprocessing):
    """GCN per image (Goodfellow et al., 2016, eq. 12.3); see :func:`global_contrast_normalize`.

    Args:
        scale: ``s``, the output contrast.
        lam: ``λ``, a regularizer added to the variance (biases small contrasts down).
        eps: ``ε``, the smallest divisor (avoids dividing by ~0 for near-constant images).
    """

    def __init__(self, scale: float = 1.0, lam: float = 0.0, eps: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.lam, self.eps = float(scale), float(lam), float(eps)

    def call(self, images):
        return global_contrast_normalize(images, self.scale, self.lam, self.eps)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "lam": self.lam, "eps": self.eps}


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class LocalContrastNormalization(_Preprocessing):
    """LCN (Jarrett et al., 2009); see :func:`local_contrast_normalize`.

    Args:
        kernel_size: odd side of the Gaussian window.
        sigma: standard deviation of the window, in pixels.
        floor: the smallest divisor.
    """

    def __init__(self, kernel_size: int = 9, sigma: float = 2.0, floor: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        gaussian_kernel_1d(kernel_size, sigma)  # validates both, naming the bad value
        self.kernel_size, self.sigma, self.floor = int(kernel_size), float(sigma), float(floor)

    def call(self, images):
        return local_contrast_normalize(images, self.kernel_size, self.sigma, self.floor)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": self.kernel_size,
            "sigma": self.sigma,
            "floor": self.floor,
        }


@keras.saving.register_keras_serializable(package=_SERIAL_PACKAGE)
class ChannelStandardization(_Preprocessing):
    """Per-channel ``(x - mean) / std`` with constants measured on the training split.

    Args:
        mean: one value per channel.
        std: one positive value per channel.
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        if len(self.mean) != len(self.std) or not all(s > 0 and math.isfinite(s) for s in self.std):
            raise ValueError(f"Bad standardization stats mean={self.mean!r} std={self.std!r}")

    def call(self, images):
        return standardize(images, self.mean, self.std)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}
