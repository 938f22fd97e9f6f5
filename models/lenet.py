"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition").

Two variants share one builder:

- ``"modern"``: ReLU, max pooling, a dense softmax head — the textbook re-implementation. Its
  two convolutions can be swapped for a tiled or a locally connected layer (``conv=``) to
  compare the three kinds of weight sharing of Goodfellow et al. 2016, §9.5, Fig. 9.16.
- ``"lecun1998"``: the paper's network — scaled tanh ``1.7159·tanh(2a/3)``, trainable
  subsampling (S2/S4: a coefficient and a bias per map), C3's partial connection table
  (Table I), C5 as a 5×5 convolution, F6, and optionally the Euclidean RBF output layer.
  60,840 parameters with the RBF output (the paper's "about 60,000").

Both take the paper's 32×32 input field: smaller images are zero-padded to it (``pad_to``), as
the paper centres 28×28 MNIST digits in a 32×32 field.
"""

from __future__ import annotations

import keras
import numpy as np
from convflow.models.common import (
    check_args,
    check_choice,
    classifier_head,
    dense_head,
    require_min_size,
)
from convflow.models.layers.locally_connected import LocallyConnected2D
from convflow.models.layers.tiled import TiledConv2D
from convflow.models.registry import register, variant
from keras import layers, ops

PAPER = "LeCun et al. 1998, Gradient-based learning applied to document recognition"

# Table I of the paper: the S2 maps each C3 map reads. Breaking symmetry this way forces the
# C3 maps to extract different features, and cuts C3 to 1,516 parameters.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)  # fmt: skip

VARIANTS = ("modern", "lecun1998")
CONVS = ("conv", "tiled", "local")
# S2/S4 of "modern": max or average pooling (Boureau et al. 2010 compare the two), or a learned
# 2×2 stride-2 convolution in their place (Springenberg et al. 2015, "all convolutional net").
DOWNSAMPLINGS = ("max", "avg", "strided")
# Implicit zero padding of C1 and C3 (Goodfellow et al. 2016, §9.5 and Table 11.1): "valid"
# (the paper: each layer shrinks the map by kernel_size - 1) or "same" (zeros keep it).
PADDINGS = ("valid", "same")
# Smallest side each variant's layers fit without padding (the 1998 C5 needs 5×5 S4 maps).
MIN_SIZE = {"modern": 16, "lecun1998": 32}


@keras.saving.register_keras_serializable(package="convflow")
def scaled_tanh(x):
    """LeCun's squashing function ``1.7159·tanh(2x/3)``: f(±1) = ±1 (paper, Appendix A)."""
    return 1.7159 * ops.tanh(x * (2.0 / 3.0))


@keras.saving.register_keras_serializable(package="convflow")
class Subsampling2D(keras.layers.Layer):
    """S-layer: 2×2 sum × trainable coefficient + trainable bias, per map (2 params a map)."""

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        c = input_shape[-1]
        self.coefficient = self.add_weight(name="coefficient", shape=(c,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(c,), initializer="zeros")

    def call(self, inputs):
        summed = ops.average_pool(inputs, 2, strides=2, padding="valid") * 4.0
        return self.activation(summed * self.coefficient + self.bias)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h // 2, None if w is None else w // 2, c)

    def get_config(self):
        return {**super().get_config(), "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="convflow")
class ConnectionTableConv2D(keras.layers.Layer):
    """'valid' convolution where output map ``o`` reads only the input maps ``connections[o]``.

    Only the connected kernels are parameters (``kh·kw`` per connection, plus a bias per map);
    a fixed 0/1 scatter matrix places them into a dense kernel for ``ops.conv``.
    Initialised uniform in ±2.4/fan_in per output map (paper, Appendix C).
    """

    def __init__(self, connections, kernel_size=5, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.connections = tuple(tuple(int(i) for i in c) for c in connections)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        channels, filters = input_shape[-1], len(self.connections)
        pairs = [(i, o) for o, ins in enumerate(self.connections) for i in ins]
        if max(i for i, _ in pairs) >= channels:
            raise ValueError(
                f"{self.name}: connections name input map {max(i for i, _ in pairs)} but the "
                f"input has {channels} channels"
            )
        scatter = np.zeros((len(pairs), channels * filters), "float32")
        scatter[np.arange(len(pairs)), [i * filters + o for i, o in pairs]] = 1.0
        self.scatter = scatter
        k2 = self.kernel_size**2
        limits = np.array([2.4 / (k2 * len(self.connections[o])) for _, o in pairs], "float32")

        def init(shape, dtype=None):
            u = keras.random.uniform(shape, minval=-1.0, maxval=1.0, dtype=dtype)
            return u * ops.cast(limits, u.dtype)

        self.kernel = self.add_weight(name="kernel", shape=(k2, len(pairs)), initializer=init)
        self.bias = self.add_weight(name="bias", shape=(filters,), initializer="zeros")

    def call(self, inputs):
        k, channels, filters = self.kernel_size, inputs.shape[-1], len(self.connections)
        dense = ops.matmul(self.kernel, ops.cast(self.scatter, self.compute_dtype))
        kernel = ops.reshape(dense, (k, k, channels, filters))
        return self.activation(ops.conv(inputs, kernel, padding="valid") + self.bias)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        k = self.kernel_size
        return (n, None if h is None else h - k + 1, None if w is None else w - k + 1,
                len(self.connections))  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "connections": [list(c) for c in self.connections],
            "kernel_size": self.kernel_size,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package="convflow")
class EuclideanRBF(keras.layers.Layer):
    """The paper's output layer: ``y_i = -||x - w_i||²``, then ``activation``.

    The paper outputs the penalty ``||x - w_i||²`` (smaller is better); negating it makes the
    outputs logits, so the usual softmax + cross-entropy trains it. Centres start at random
    ±1 codes, like the paper's ±1 bitmaps (which it chose by hand).
    """

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        def init(shape, dtype=None):
            return ops.sign(keras.random.uniform(shape, minval=-1.0, maxval=1.0, dtype=dtype))

        self.centres = self.add_weight(
            name="centres", shape=(input_shape[-1], self.units), initializer=init
        )

    def call(self, inputs):
        cross = ops.matmul(inputs, self.centres)
        sq_in = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        sq_c = ops.sum(ops.square(self.centres), axis=0)
        return self.activation(-(sq_in - 2.0 * cross + sq_c))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
        }


def _conv(
    x, filters, kind, tile_size, activation, name, batch_norm=False, kernel=5, padding="valid"
):
    """A kernel×kernel layer of the chosen weight sharing, optionally conv → BN → activation."""
    if batch_norm:
        x = _conv(x, filters, kind, tile_size, None, name, kernel=kernel, padding=padding)
        x = layers.BatchNormalization(name=name.replace("_conv", "_bn"))(x)
        return layers.Activation(activation, name=name.replace("_conv", "_act"))(x)
    if kind == "tiled":
        layer = TiledConv2D(filters, kernel, tile_size=tile_size, activation=activation, name=name)
    elif kind == "local":
        layer = LocallyConnected2D(filters, kernel, activation=activation, name=name)
    else:
        layer = layers.Conv2D(filters, kernel, padding=padding, activation=activation, name=name)
    return layer(x)


def _downsample(x, kind, activation, name):
    """Halves H and W: 2×2 max or average pooling, or a learned 2×2 stride-2 convolution."""
    if kind == "strided":
        return layers.Conv2D(x.shape[-1], 2, strides=2, activation=activation, name=name)(x)
    pool = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    return pool(2, name=name)(x)


def _check_kernel(variant, conv, kernel_size, padding, input_shape, pad_to):
    """``kernel_size``/``padding`` are "modern" knobs; the maps must stay ≥ 1×1 through S4."""
    if not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"kernel_size={kernel_size!r} must be a positive int")
    if variant == "lecun1998" and (kernel_size, padding) != (5, "valid"):
        raise ValueError(
            f"kernel_size={kernel_size!r}, padding={padding!r} are for variant='modern'; "
            "lecun1998 has the paper's 5×5 'valid' layers"
        )
    if padding != "valid" and conv != "conv":
        raise ValueError(f"padding={padding!r} needs conv='conv'; got conv={conv!r}")
    side = min(d for d in input_shape[:2] if d) if any(input_shape[:2]) else None
    if side is None or padding == "same" or kernel_size == 5:
        return  # the paper's 5×5 'valid' layers: require_min_size names the minimum (MIN_SIZE)
    side = max(side, pad_to or 0)
    for _ in range(2):  # C1 → S2, C3 → S4
        side = (side - kernel_size + 1) // 2
    if side < 1:
        raise ValueError(
            f"kernel_size={kernel_size!r} with padding='valid' leaves no feature map at S4 for "
            f"input {tuple(input_shape)}; use a smaller kernel or padding='same'"
        )


def LeNet5(
    input_shape=(32, 32, 1),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="lenet5",
    variant="modern",
    filters=(6, 16),
    units=(120, 84),
    pad_to=32,
    conv="conv",
    tile_size=2,
    rbf_output=False,
    dropout=0.0,
    batch_norm=False,
    downsampling="max",
    kernel_size=5,
    padding="valid",
):
    """Builds LeNet-5.

    Args:
        input_shape: (H, W, C); sides below ``pad_to`` are zero-padded up to it.
        num_classes: outputs of the "predictions" layer.
        include_top: build the classifier (F-layers and output); else return features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name.
        variant: "modern" or "lecun1998" (see the module docstring).
        filters: (C1, C3) feature maps; "lecun1998" needs (6, 16) for its table.
        units: widths of the hidden layers: (fc1, fc2) for "modern", (C5, F6) for "lecun1998".
        pad_to: side of the input field smaller inputs are centred in; None to disable
            (then "modern" needs ≥16×16 and "lecun1998" ≥32×32).
        conv: "conv", "tiled" or "local" for the two 5×5 layers of "modern".
        tile_size: t for ``conv="tiled"``.
        rbf_output: "lecun1998" only: the Euclidean RBF output layer instead of a dense one.
        dropout: "modern" only: dropout rate after fc1 and fc2 (Srivastava et al. 2014; not in
            the paper), useful with wider ``filters``.
        batch_norm: "modern" only: batch normalization after C1 and C3 (Ioffe & Szegedy 2015).
        downsampling: "modern" only: S2 and S4 as "max" or "avg" 2×2 pooling, or "strided", a
            2×2 stride-2 convolution with as many maps as its input (learned downsampling).
        kernel_size: "modern" only: side of the C1 and C3 kernels (the paper's 5); a capacity
            knob of Goodfellow et al. 2016, Table 11.1.
        padding: "modern" with conv="conv" only: "valid" (the paper) or "same", implicit zero
            padding that keeps each map's size (Table 11.1's "implicit zero padding").

    Returns:
        keras.Model mapping (B, H, W, C) images to (B, num_classes) class scores, or features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take; settings of one ``variant`` given to the other
            (C3 table, ``rbf_output``, ``batch_norm``, ``dropout``, ``downsampling``), ``units``
            not two widths, an unknown ``conv``, ``downsampling`` or ``padding``, a
            ``kernel_size`` < 1 or one the maps become too small for.
    """
    check_args(input_shape, num_classes, include_top, pooling, name=name)
    check_choice(variant, VARIANTS, "variant")
    check_choice(conv, CONVS, "conv")
    check_choice(downsampling, DOWNSAMPLINGS, "downsampling")
    check_choice(padding, PADDINGS, "padding")
    _check_kernel(variant, conv, kernel_size, padding, input_shape, pad_to)
    faithful = variant == "lecun1998"
    if faithful and (tuple(filters) != (6, 16) or conv != "conv"):
        raise ValueError(
            f"variant='lecun1998' has the paper's C3 table: it needs filters=(6, 16) and "
            f"conv='conv'; got filters={filters!r}, conv={conv!r}"
        )
    if downsampling != "max" and faithful:
        raise ValueError(
            f"downsampling={downsampling!r} is for variant='modern'; lecun1998 has trainable "
            "subsampling"
        )
    if rbf_output and not faithful:
        raise ValueError("rbf_output=True is part of variant='lecun1998'; got variant='modern'")
    if batch_norm and faithful:
        raise ValueError("batch_norm=True is for variant='modern'; got variant='lecun1998'")
    if not 0.0 <= dropout < 1.0 or (dropout and faithful):
        raise ValueError(f"dropout={dropout!r} must be in [0, 1) and is for variant='modern'")
    if len(units) != 2:
        raise ValueError(f"units={units!r} must hold two widths")
    if pad_to is None:
        require_min_size(input_shape, MIN_SIZE[variant], name, hint="keep pad_to=32")

    inputs = keras.Input(input_shape, name="images")
    x = inputs
    pads = [max(pad_to - d, 0) if pad_to and d else 0 for d in input_shape[:2]]
    if any(pads):
        x = layers.ZeroPadding2D([(p // 2, p - p // 2) for p in pads], name="stem_pad")(x)
    act = scaled_tanh if faithful else "relu"
    shape = {"kernel": kernel_size, "padding": padding}
    x = _conv(x, filters[0], conv, tile_size, act, "c1_conv", batch_norm, **shape)  # (B, 28, 28, 6)
    if faithful:
        x = Subsampling2D(activation=scaled_tanh, name="s2_pool")(x)
        x = ConnectionTableConv2D(C3_TABLE, 5, activation=scaled_tanh, name="c3_conv")(x)
        x = Subsampling2D(activation=scaled_tanh, name="s4_pool")(x)  # (B, 5, 5, 16)
        x = layers.Conv2D(units[0], 5, activation=scaled_tanh, name="c5_conv")(x)
    else:
        x = _downsample(x, downsampling, act, "s2_pool")
        x = _conv(x, filters[1], conv, tile_size, act, "c3_conv", batch_norm, **shape)
        x = _downsample(x, downsampling, act, "s4_pool")  # (B, 5, 5, 16) at 32×32

    if not include_top:
        outputs = classifier_head(x, num_classes, False, pooling, classifier_activation)
    elif faithful:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(units[1], activation=scaled_tanh, name="f6")(x)
        out = (
            EuclideanRBF(num_classes, classifier_activation, dtype="float32", name="predictions")
            if rbf_output
            else layers.Dense(
                num_classes, activation=classifier_activation, dtype="float32", name="predictions"
            )
        )
        outputs = out(x)
    else:
        outputs = dense_head(x, num_classes, classifier_activation, units=units, dropout=dropout)
    return keras.Model(inputs, outputs, name=name)


_SIZES = "any H×W (padded to 32×32 when smaller)"
# The tiled and locally connected variants have no shared 2-D kernel to plot or initialize.
for _name, _kwargs, _paper, _test, _first in (
    ("lenet5", {}, PAPER, {}, "c1_conv"),
    ("lenet5_1998", {"variant": "lecun1998"}, PAPER, {"rbf_output": True}, "c1_conv"),
    (
        "lenet5_tiled",
        {"conv": "tiled"},
        "Le et al. 2010, Tiled convolutional neural networks",
        {},
        None,
    ),
    (
        "lenet5_local",
        {"conv": "local"},
        "Goodfellow et al. 2016, §9.5 (unshared convolution)",
        {},
        None,
    ),
):
    register(
        _name,
        family="lenet",
        first_conv=_first,
        paper=_paper,
        test_input_shape=(28, 28, 1),
        input_sizes=_SIZES,
        test_kwargs=_test,
    )(variant(LeNet5, name=_name, **_kwargs))
