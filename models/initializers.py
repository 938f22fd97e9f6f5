"""Kernels obtained without supervised training (Goodfellow et al. 2016, §9.9).

The lecture lists three ways to get convolution kernels without back-propagation: random
(Jarrett et al. 2009; Keras's own initializers), designed by hand, and learned with an
unsupervised criterion (Coates & Ng 2011: k-means on whitened image patches). This module
gives the last two as Keras initializers for a 2-D convolution kernel (kh, kw, in, out):

- ``"edge"``: the two-element kernel [-1, 1] of Fig. 9.6 (pixel minus its left neighbour).
- ``"sobel"``: the Sobel x/y pair.
- ``"gabor"``: a bank of Gabor filters, the model of V1 simple cells.
- ``"kmeans"``: spherical k-means centroids of ZCA-whitened random patches (see
  :mod:`models.kmeans_patches`).

plus the two structural initializers the segmentation models need: ``"conv_identity"``
(Yu & Koltun 2016) and ``"bilinear"`` (Long et al. 2015, for transposed convolutions).

A hand-designed bank of n filters fills output channel ``o`` with filter ``o % n``; each
filter is divided by the number of input channels, so on a colour image it responds to the
channel mean. Any builder uses them through :func:`get` on its first convolution, e.g.
``build("unet", ..., stem_initializer={"name": "gabor", "orientations": 8})``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from convflow.models.kmeans_patches import KMeansPatches
from keras import ops

__all__ = ["Bilinear", "ConvIdentity", "EdgeDetector", "Gabor", "KMeansPatches", "Sobel", "get"]


def _check_conv2d_shape(shape, name):
    if len(shape) != 4:
        raise ValueError(
            f"{name} initializes 2-D convolution kernels (kh, kw, in, out); got shape={shape!r}"
        )


def _bank_to_kernel(bank, shape):
    """Embeds n (h, w) filters centred in a (kh, kw, in, out) kernel, cycling over outputs."""
    kh, kw, cin, cout = shape
    n, h, w = bank.shape
    if h > kh or w > kw:
        raise ValueError(f"these filters are {h}×{w}; kernel_size {kh}×{kw} is too small")
    top, left = (kh - h) // 2, (kw - w) // 2
    kernel = np.zeros(shape, dtype="float64")
    for o in range(cout):
        kernel[top : top + h, left : left + w, :, o] = bank[o % n][:, :, None] / cin
    return kernel


class _Bank(keras.initializers.Initializer):
    """Base for the fixed hand-designed filter banks."""

    def bank(self, shape):  # (n, h, w) float64
        raise NotImplementedError

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        _check_conv2d_shape(shape, type(self).__name__)
        return ops.convert_to_tensor(_bank_to_kernel(self.bank(shape), shape), dtype=dtype)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="convflow")
class EdgeDetector(_Bank):
    """The two-element edge detector of Goodfellow et al. 2016, Fig. 9.6.

    ``orientation="vertical"`` gives [-1, 1] along a row: each output is the pixel minus its
    left neighbour (Keras convolutions are cross-correlations), so vertical edges light up.
    ``"horizontal"`` is its transpose (pixel minus the one above); ``"both"`` alternates.
    """

    ORIENTATIONS = ("vertical", "horizontal", "both")

    def __init__(self, orientation="vertical"):
        if orientation not in self.ORIENTATIONS:
            raise ValueError(
                f"Unknown orientation={orientation!r}; expected one of {self.ORIENTATIONS}"
            )
        self.orientation = orientation

    def bank(self, shape):
        kh, kw = shape[:2]
        filters = []
        # The +1 sits on the centre tap (the right/lower one of an even kernel) and the -1 on
        # its left (or upper) neighbour.
        if self.orientation in ("vertical", "both"):
            if kw < 2:
                raise ValueError(f"a vertical-edge kernel needs kernel width ≥ 2; got {shape!r}")
            f = np.zeros((kh, kw))
            f[(kh - 1) // 2, kw // 2 - 1 : kw // 2 + 1] = (-1.0, 1.0)
            filters.append(f)
        if self.orientation in ("horizontal", "both"):
            if kh < 2:
                raise ValueError(f"a horizontal-edge kernel needs kernel height ≥ 2; got {shape!r}")
            f = np.zeros((kh, kw))
            f[kh // 2 - 1 : kh // 2 + 1, (kw - 1) // 2] = (-1.0, 1.0)
            filters.append(f)
        return np.stack(filters)

    def get_config(self):
        return {"orientation": self.orientation}


@keras.saving.register_keras_serializable(package="convflow")
class Sobel(_Bank):
    """Sobel (1968) derivative filters: output channels alternate Gx, Gy (3×3, centred)."""

    GX = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

    def bank(self, shape):
        return np.stack([self.GX, self.GX.T])


@keras.saving.register_keras_serializable(package="convflow")
class Gabor(_Bank):
    """A Gabor filter bank (Daugman 1985), the classic model of V1 simple-cell receptive fields.

    g(x, y) = exp(-(x'² + γ² y'²) / (2σ²)) · cos(2π x'/λ + ψ), with x' = x cosθ + y sinθ and
    y' = -x sinθ + y cosθ. The bank takes every (wavelength, orientation, phase) combination;
    each filter is made zero-mean (no response to flat regions) and unit-L2-norm.

    Args:
        orientations: number of angles θ evenly spaced over [0, π).
        wavelengths: λ values in pixels; None picks kernel_width / 2.
        phases: ψ values in radians (0: even/symmetric, π/2: odd/antisymmetric).
        sigma_ratio: σ = sigma_ratio · λ (0.56 gives roughly one-octave bandwidth).
        aspect: γ, the ellipticity of the Gaussian envelope.
    """

    def __init__(
        self, orientations=8, wavelengths=None, phases=(0.0, math.pi / 2), sigma_ratio=0.56,
        aspect=0.5,
    ):  # fmt: skip
        if not isinstance(orientations, int) or orientations < 1:
            raise ValueError(f"orientations={orientations!r} must be a positive int")
        self.orientations = orientations
        self.wavelengths = None if wavelengths is None else [float(w) for w in wavelengths]
        self.phases = [float(p) for p in phases]
        self.sigma_ratio = float(sigma_ratio)
        self.aspect = float(aspect)

    def bank(self, shape):
        kh, kw = shape[:2]
        wavelengths = self.wavelengths or [max(kw, kh) / 2.0]
        ys, xs = np.mgrid[:kh, :kw].astype("float64")
        xs -= (kw - 1) / 2.0
        ys -= (kh - 1) / 2.0
        filters = []
        for lam in wavelengths:
            sigma = self.sigma_ratio * lam
            for k in range(self.orientations):
                theta = math.pi * k / self.orientations
                xr = xs * math.cos(theta) + ys * math.sin(theta)
                yr = -xs * math.sin(theta) + ys * math.cos(theta)
                envelope = np.exp(-(xr**2 + self.aspect**2 * yr**2) / (2 * sigma**2))
                for psi in self.phases:
                    g = envelope * np.cos(2 * math.pi * xr / lam + psi)
                    g -= g.mean()
                    filters.append(g / max(np.linalg.norm(g), 1e-12))
        return np.stack(filters)

    def get_config(self):
        return {
            "orientations": self.orientations,
            "wavelengths": self.wavelengths,
            "phases": self.phases,
            "sigma_ratio": self.sigma_ratio,
            "aspect": self.aspect,
        }


@keras.saving.register_keras_serializable(package="convflow")
class ConvIdentity(keras.initializers.Initializer):
    """Identity initialization of Yu & Koltun 2016 (Multi-Scale Context Aggregation), eq. 4–5.

    k(t, a, b) = C / c_out if t is the centre tap and floor(a·C / c_in) == floor(b·C / c_out),
    else ε ~ N(0, noise_stddev). With c_in == c_out == C this is the exact identity, so a stack
    of such layers with ReLU passes non-negative input through unchanged; when channels widen
    (the "large" context module) the groups still sum back to the input.

    Args:
        channels: C, the module's base channel count; None uses min(c_in, c_out).
        noise_stddev: σ of the noise added everywhere else (the paper uses σ ≪ C / c_out).
        seed: for the noise.
    """

    def __init__(self, channels=None, noise_stddev=0.0, seed=None):
        self.channels = channels
        self.noise_stddev = float(noise_stddev)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        _check_conv2d_shape(shape, "ConvIdentity")
        kh, kw, cin, cout = shape
        c = self.channels or min(cin, cout)
        rng = np.random.default_rng(self.seed)
        kernel = rng.normal(0.0, self.noise_stddev, size=shape) if self.noise_stddev else None
        kernel = np.zeros(shape) if kernel is None else kernel
        groups_in = (np.arange(cin) * c) // cin
        groups_out = (np.arange(cout) * c) // cout
        kernel[kh // 2, kw // 2] = np.where(groups_in[:, None] == groups_out[None, :], c / cout, 0)
        return ops.convert_to_tensor(kernel, dtype=dtype)

    def get_config(self):
        return {"channels": self.channels, "noise_stddev": self.noise_stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="convflow")
class Bilinear(keras.initializers.Initializer):
    """Bilinear-interpolation kernel for Conv2DTranspose, channel to same channel.

    Long et al. 2015 (FCN) initialize their in-network upsampling this way, so an untrained
    decoder already interpolates instead of emitting noise.
    """

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        _check_conv2d_shape(shape, "Bilinear")
        kh, kw, cout, cin = shape  # Conv2DTranspose kernels are (kh, kw, out, in)

        def taps(k):
            factor = (k + 1) // 2
            centre = factor - 1 if k % 2 == 1 else factor - 0.5
            return 1 - np.abs(np.arange(k) - centre) / factor

        kernel = np.zeros(shape)
        for c in range(min(cin, cout)):
            kernel[:, :, c, c] = np.outer(taps(kh), taps(kw))
        return ops.convert_to_tensor(kernel, dtype=dtype)

    def get_config(self):
        return {}


_BY_NAME = {
    "edge": EdgeDetector,
    "sobel": Sobel,
    "gabor": Gabor,
    "kmeans": KMeansPatches,
    "conv_identity": ConvIdentity,
    "bilinear": Bilinear,
}


def get(spec):
    """Resolves an initializer spec used in configs and builder kwargs.

    Args:
        spec: None (returns None: the builder keeps its default), a name from this module
            (``"sobel"``), a dict ``{"name": "gabor", "orientations": 4}`` /
            ``{"name": "kmeans", "patches_from": images}``, a Keras initializer name
            (``"he_normal"``) or an Initializer instance.

    Returns:
        A keras Initializer, or None.
    """
    if spec is None or isinstance(spec, keras.initializers.Initializer):
        return spec
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if name not in _BY_NAME:
            raise ValueError(
                f"Unknown initializer name={name!r} in {sorted(spec)}; expected one of "
                f"{sorted(_BY_NAME)} (plain Keras initializers are given as a string)"
            )
        return _BY_NAME[name](**kwargs)
    if isinstance(spec, str):
        if spec in _BY_NAME:
            return _BY_NAME[spec]()
        try:
            return keras.initializers.get(spec)
        except ValueError:
            raise ValueError(
                f"Unknown initializer {spec!r}; expected one of {sorted(_BY_NAME)} or a Keras "
                "initializer name such as 'he_normal'"
            ) from None
    raise TypeError(f"initializer spec must be None, a str, a dict or an Initializer; got {spec!r}")


def first_conv(model, layer_name: str | None = None):
    """The model's first convolution: the layer ``layer_name`` (the zoo's ModelSpec.first_conv).

    Without a name (a model from outside the zoo), the first layer by order with a 2-D
    kernel (kh, kw, in, out).

    Raises:
        ValueError: no such layer, or no 2-D convolution.
    """
    if layer_name is not None:
        try:
            return model.get_layer(layer_name)
        except ValueError:
            raise ValueError(f"{model.name} has no layer {layer_name!r}") from None
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4 and "conv" in type(layer).__name__.lower():
            return layer
    raise ValueError(f"{model.name} has no 2-D convolution to initialize")


def init_first_conv(model, spec, trainable: bool = True, layer_name: str | None = None):
    """Sets ``model``'s first convolution kernel from ``spec`` (see :func:`get`).

    This is how any zoo model starts from hand-designed or k-means kernels without its
    builder knowing: ``init_first_conv(build("resnet20", ...), {"name": "gabor"})``.
    Freezing (``trainable=False``) must happen before compile.

    Returns:
        The initialized layer.

    Raises:
        ValueError: the model has no first convolution (see :func:`first_conv`).
    """
    layer = first_conv(model, layer_name)
    initializer = get(spec)
    layer.kernel.assign(initializer(tuple(layer.kernel.shape), dtype=layer.kernel.dtype))
    layer.trainable = trainable
    return layer


def stem_kernel_initializer(spec, default="glorot_uniform"):
    """What a builder passes as its first convolution's ``kernel_initializer``."""
    return get(spec) or default
