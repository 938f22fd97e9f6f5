"""VGG-11/13/16/19 (Simonyan & Zisserman 2015, "Very deep convolutional networks for
large-scale image recognition"), configurations A, B, D and E of Table 1.

Max pools use 'same' padding, which equals the paper's pooling on 224×224 (all sides even)
and Caffe's ceil-mode pooling on odd sides, so 28×28 inputs work too (the last block sees
1×1 maps). Parameters at 224×224×3 with 1000 classes: VGG-16 138,357,544 and VGG-19
143,667,240 (the paper's Table 2: 138M and 144M).
"""

from __future__ import annotations

import keras
from convflow.models.common import check_args, check_choice, classifier_head, dense_head
from convflow.models.registry import register, variant
from keras import layers

PAPER = "Simonyan & Zisserman 2015, Very deep convolutional networks (VGG)"
WIDTHS = (64, 128, 256, 512, 512)
# Convolutions per block, Table 1 columns A (11), B (13), D (16), E (19).
CONFIGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def vgg_block(x, filters, convs, batch_norm, name):
    """``convs`` 3×3 convolutions (+BN) with ReLU, then a 2×2/2 max pool."""
    for j in range(1, convs + 1):
        x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv{j}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{j}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{j}")(x)
    return layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)


def VGG(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    depth=16,
    batch_norm=False,
    fc_units=(4096, 4096),
    dropout=0.5,
):
    """Builds a VGG network.

    Args:
        input_shape: (H, W, C), any size (28×28 leaves 1×1 maps in block 5).
        num_classes: outputs of "predictions".
        include_top: build fc1, fc2 and "predictions"; else return block5 features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name; defaults to ``f"vgg{depth}"`` (``_bn`` appended with batch norm).
        depth: 11, 13, 16 or 19.
        batch_norm: batch normalization after every convolution (Ioffe & Szegedy 2015; not in
            the paper, which trained the deeper nets from the shallower ones instead).
        fc_units: widths of fc1 and fc2.
        dropout: rate after fc1 and fc2 (paper §3.1: 0.5).

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or (B, ⌈H/32⌉, ⌈W/32⌉, 512) features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take; an unknown ``depth``.
    """
    check_choice(depth, CONFIGS, "depth")
    name = name or f"vgg{depth}" + ("_bn" if batch_norm else "")
    check_args(input_shape, num_classes, include_top, pooling, name=name)

    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for i, (width, convs) in enumerate(zip(WIDTHS, CONFIGS[depth], strict=True), start=1):
        x = vgg_block(x, width, convs, batch_norm, name=f"block{i}")

    if include_top:
        outputs = dense_head(x, num_classes, classifier_activation, fc_units, dropout)
    else:
        outputs = classifier_head(x, num_classes, False, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


for _depth in CONFIGS:
    register(
        f"vgg{_depth}",
        family="vgg",
        first_conv="block1_conv1",
        paper=PAPER,
        test_input_shape=(32, 32, 3),
        input_sizes="any H×W (224×224 in the paper)",
    )(variant(VGG, depth=_depth))
