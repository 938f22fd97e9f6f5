"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep CNNs").

Single tower: the paper split conv2, conv4 and conv5 across two GPUs (60.97M parameters); here
the halves are merged, as in most re-implementations, giving 62,378,344 parameters at
224×224×3 with 1000 classes. Convolutions use 'same' padding so 224×224 inputs reach the
paper's 6×6×256 last feature map (the paper's 224 vs. 227 inconsistency disappears).
"""

from __future__ import annotations

import keras
from convflow.models.common import (
    check_args,
    check_choice,
    classifier_head,
    dense_head,
    require_min_size,
)
from convflow.models.layers.lrn import LocalResponseNormalization
from convflow.models.registry import register, variant
from keras import layers

PAPER = "Krizhevsky et al. 2012, ImageNet classification with deep convolutional neural networks"

# conv1 of each stem; "small" keeps every later layer and drops conv1's stride 4, so 28×28 and
# 32×32 images still have 3×3 maps before the last overlapping pool.
STEMS = {"imagenet": {"kernel": 11, "strides": 4}, "small": {"kernel": 5, "strides": 1}}
# Smallest side each stem accepts: the three 3×3/2 'valid' pools need 15×15 after conv1.
MIN_SIZE = {"imagenet": 57, "small": 15}


def AlexNet(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="alexnet",
    stem="imagenet",
    lrn=True,
    dropout=0.5,
    filters=(96, 256, 384, 384, 256),
    fc_units=(4096, 4096),
):
    """Builds AlexNet.

    Args:
        input_shape: (H, W, C); ≥57×57 with the ImageNet stem, ≥15×15 with ``stem="small"``.
        num_classes: outputs of "predictions".
        include_top: build fc1, fc2 and "predictions"; else return the pool5 features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name.
        stem: "imagenet" (11×11 stride 4 conv1) or "small" (5×5 stride 1, for 28–64 px).
        lrn: local response normalization after conv1 and conv2 (paper §3.3).
        dropout: rate after fc1 and fc2 (paper §4.2: 0.5).
        filters: widths of conv1…conv5.
        fc_units: widths of fc1 and fc2.

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or (B, h, w, filters[-1]) features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take; ``filters`` not five widths; an unknown
            ``stem``.
    """
    check_args(input_shape, num_classes, include_top, pooling, name=name)
    check_choice(stem, STEMS, "stem")
    if len(filters) != 5:
        raise ValueError(f"filters={filters!r} must hold the five conv widths")
    hint = "use stem='small' for small images" if stem == "imagenet" else ""
    require_min_size(input_shape, MIN_SIZE[stem], name, hint=hint)

    inputs = keras.Input(input_shape, name="images")
    spec = STEMS[stem]
    x = layers.Conv2D(
        filters[0], spec["kernel"], spec["strides"], "same", activation="relu", name="conv1"
    )(inputs)
    if lrn:
        x = LocalResponseNormalization(name="conv1_lrn")(x)
    x = layers.MaxPooling2D(3, 2, name="pool1")(x)  # overlapping pooling, paper §3.4
    x = layers.Conv2D(filters[1], 5, padding="same", activation="relu", name="conv2")(x)
    if lrn:
        x = LocalResponseNormalization(name="conv2_lrn")(x)
    x = layers.MaxPooling2D(3, 2, name="pool2")(x)
    for i, width in enumerate(filters[2:], start=3):
        x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    x = layers.MaxPooling2D(3, 2, name="pool5")(x)  # (B, 6, 6, 256) at 224×224

    if include_top:
        outputs = dense_head(x, num_classes, classifier_activation, fc_units, dropout)
    else:
        outputs = classifier_head(x, num_classes, False, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


register(
    "alexnet",
    family="alexnet",
    first_conv="conv1",
    paper=PAPER,
    test_input_shape=(32, 32, 3),
    input_sizes="≥57×57; ≥15×15 with stem='small'",
    test_kwargs={"stem": "small"},
)(variant(AlexNet, name="alexnet"))
