"""Residual networks (He et al. 2016, "Deep residual learning for image recognition").

- ImageNet layout (§3.4, Table 1): ResNet-18/34 with basic blocks, 50/101/152 with
  bottleneck blocks; projection shortcuts where the shape changes (option B). Layer names and
  parameter counts follow keras.applications (ResNet-50: 25,636,712, conv biases included).
- CIFAR layout (§4.2): 6n+2 layers, 16/32/64 filters on 32×32/16×16/8×8 maps, shortcut
  option "A" (subsample + zero-pad channels, no parameters, as in the paper's Table 6) or "B"
  (1×1 projection). ResNet-20/32/44/56/110: 0.27M/0.46M/0.66M/0.85M/1.7M parameters.
"""

from __future__ import annotations

import keras
from convflow.models.common import check_args, check_choice, classifier_head
from convflow.models.registry import register, variant
from keras import layers, ops

PAPER = "He et al. 2016, Deep residual learning for image recognition"
BN_EPSILON = 1.001e-5  # keras.applications' value, so converted weights behave the same

# depth -> (block, blocks per stage); stage widths are 64, 128, 256, 512 (×4 for bottleneck).
IMAGENET = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
CIFAR_WIDTHS = (16, 32, 64)
STEMS = ("imagenet", "small")
SHORTCUTS = ("A", "B")


@keras.saving.register_keras_serializable(package="convflow")
class ZeroPadShortcut(keras.layers.Layer):
    """Option A shortcut: subsample by ``strides`` and zero-pad the new channels (no params)."""

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = int(filters), int(strides)

    def call(self, inputs):
        x = inputs[:, :: self.strides, :: self.strides, :]
        extra = self.filters - inputs.shape[-1]
        # Pad both sides like the paper's reference code, so the identity sits in the middle.
        return ops.pad(x, [(0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)])

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.strides
        return (n, None if h is None else -(-h // s), None if w is None else -(-w // s),
                self.filters)  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def conv_bn(x, filters, kernel, strides=1, use_bias=True, relu=True, name=None):
    x = layers.Conv2D(
        filters, kernel, strides, padding="same", use_bias=use_bias, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters, strides=1, shortcut="B", use_bias=True, name=None):
    """Two 3×3 convolutions (Fig. 2 left); ``shortcut`` when the shape changes."""
    if strides != 1 or x.shape[-1] != filters:
        if shortcut == "A":
            skip = ZeroPadShortcut(filters, strides, name=f"{name}_0_pad")(x)
        else:
            skip = conv_bn(x, filters, 1, strides, use_bias, relu=False, name=f"{name}_0")
    else:
        skip = x
    x = conv_bn(x, filters, 3, strides, use_bias, name=f"{name}_1")
    x = conv_bn(x, filters, 3, 1, use_bias, relu=False, name=f"{name}_2")
    x = layers.Add(name=f"{name}_add")([skip, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, filters, strides=1, shortcut="B", use_bias=True, name=None):
    """1×1 reduce, 3×3, 1×1 expand to 4·filters (Fig. 5 right); stride on the first 1×1 as
    in the paper's Caffe models and keras.applications."""
    if strides != 1 or x.shape[-1] != 4 * filters:
        skip = conv_bn(x, 4 * filters, 1, strides, use_bias, relu=False, name=f"{name}_0")
    else:
        skip = x
    x = conv_bn(x, filters, 1, strides, use_bias, name=f"{name}_1")
    x = conv_bn(x, filters, 3, 1, use_bias, name=f"{name}_2")
    x = conv_bn(x, 4 * filters, 1, 1, use_bias, relu=False, name=f"{name}_3")
    x = layers.Add(name=f"{name}_add")([skip, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def _stack(x, block, widths, counts, first_stage, shortcut, use_bias):
    """Stages ``conv{first_stage}`` …; every stage but the first halves the maps."""
    for i, (width, count) in enumerate(zip(widths, counts, strict=True)):
        stage = first_stage + i
        for j in range(1, count + 1):
            strides = 2 if i > 0 and j == 1 else 1
            x = block(x, width, strides, shortcut, use_bias, name=f"conv{stage}_block{j}")
    return x


def ResNet(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    depth=50,
    stem="imagenet",
):
    """Builds an ImageNet-layout ResNet.

    Args:
        input_shape: (H, W, C), any size (the total stride is 32, or 8 with the small stem).
        num_classes: outputs of "predictions".
        include_top: global average pooling + "predictions"; else the conv5 features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name; defaults to ``f"resnet{depth}"``.
        depth: 18, 34, 50, 101 or 152.
        stem: "imagenet" (7×7/2 conv + 3×3/2 max pool) or "small" (3×3/1 conv, no pool:
            the usual adaptation to 32×32 images).

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or (B, h, w, 512 or 2048) features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take; an unknown ``depth`` or ``shortcut``.
    """
    check_choice(depth, IMAGENET, "depth")
    check_choice(stem, STEMS, "stem")
    name = name or f"resnet{depth}"
    check_args(input_shape, num_classes, include_top, pooling, name=name)
    block, counts = IMAGENET[depth]

    inputs = keras.Input(input_shape, name="images")
    if stem == "imagenet":
        x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
        x = layers.Conv2D(64, 7, 2, name="conv1_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, 2, name="pool1_pool")(x)  # (B, 56, 56, 64) at 224×224
    else:
        x = conv_bn(inputs, 64, 3, name="conv1")
    x = _stack(x, BLOCKS[block], (64, 128, 256, 512), counts, 2, "B", use_bias=True)

    outputs = classifier_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


def CifarResNet(
    input_shape=(32, 32, 3),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    depth=20,
    shortcut="A",
):
    """Builds the CIFAR-10 ResNet of §4.2: 3×3 conv 16, three stages of n basic blocks.

    Args:
        input_shape: (H, W, C), any size (total stride 4; the paper uses 32×32).
        num_classes: outputs of "predictions".
        include_top: global average pooling + "predictions"; else the conv4 features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name; defaults to ``f"resnet{depth}"``.
        depth: 6n+2 layers (20, 32, 44, 56, 110, 1202 in the paper).
        shortcut: "A" zero-padding identity (the paper's CIFAR choice) or "B" projection.

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or (B, ⌈H/4⌉, ⌈W/4⌉, 64) features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take; ``depth`` not 6n+2, an unknown ``shortcut``.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth={depth!r} must be 6n+2 with n ≥ 1, e.g. {CIFAR_DEPTHS}")
    check_choice(shortcut, SHORTCUTS, "shortcut")
    name = name or f"resnet{depth}"
    check_args(input_shape, num_classes, include_top, pooling, name=name)
    n = (depth - 2) // 6

    inputs = keras.Input(input_shape, name="images")
    # No conv biases: BatchNormalization's beta makes them redundant, as in the paper's code.
    x = conv_bn(inputs, CIFAR_WIDTHS[0], 3, use_bias=False, name="conv1")
    x = _stack(x, basic_block, CIFAR_WIDTHS, (n, n, n), 2, shortcut, use_bias=False)

    outputs = classifier_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


for _depth in IMAGENET:
    register(
        f"resnet{_depth}",
        family="resnet",
        first_conv="conv1_conv",
        paper=PAPER,
        test_input_shape=(32, 32, 3),
        input_sizes="any H×W (224×224 in the paper; stem='small' for 32×32)",
        test_kwargs={"stem": "small"} if _depth == 18 else {},
    )(variant(ResNet, depth=_depth))

for _depth in CIFAR_DEPTHS:
    register(
        f"resnet{_depth}",
        family="resnet",
        first_conv="conv1_conv",
        paper=f"{PAPER}, §4.2 (CIFAR-10)",
        test_input_shape=(32, 32, 3),
        input_sizes="any H×W (32×32 in the paper)",
        test_kwargs={"shortcut": "B"} if _depth == 20 else {},
    )(variant(CifarResNet, depth=_depth))
