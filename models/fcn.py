"""Fully convolutional networks (Long, Shelhamer & Darrell 2015, "Fully Convolutional
Networks for Semantic Segmentation").

VGG-16 with its fully connected layers recast as convolutions (fc6: 7×7, fc7: 1×1) scores every
1/32-resolution cell; transposed convolutions, initialized to bilinear interpolation, upsample
the scores. FCN-16s and FCN-8s first fuse 2×-upsampled scores with scores predicted from pool4
(and pool3), which recovers the detail that 32× pooling threw away. Variants differ only in how
many of these skips they fuse (``SKIPS``).

Inputs: H and W multiples of 32 (≥ 32). Padding is "same" throughout, so unlike the paper's
Caffe model (pad 100 + crop) no cropping layers are needed.
"""

from __future__ import annotations

import keras
from convflow.models.initializers import Bilinear
from convflow.models.registry import register, variant
from convflow.models.segmentation import (
    check_segmentation_args,
    pooled_features,
    scaled,
    vgg_encoder,
)
from keras import layers

SKIPS = {"fcn32s": 0, "fcn16s": 1, "fcn8s": 2}
PAPER = "Long, Shelhamer & Darrell 2015, Fully Convolutional Networks for Semantic Segmentation"


def _upsample(x, num_classes, factor, name):
    # Kernel 2·factor with stride factor is the paper's choice; "same" makes the size exact.
    return layers.Conv2DTranspose(
        num_classes, 2 * factor, strides=factor, padding="same", use_bias=False,
        kernel_initializer=Bilinear(), name=name,
    )(x)  # fmt: skip


def FCN(
    skips, input_shape=(224, 224, 3), num_classes=21, include_top=True, pooling=None,
    classifier_activation="softmax", name="fcn", width_multiplier=1.0, fc_filters=4096,
    dropout=0.5, stem_initializer=None,
):  # fmt: skip
    """Builds an FCN with ``skips`` in {0, 1, 2} (FCN-32s, -16s, -8s).

    Args:
        skips: how many pooling stages (pool4, then pool3) feed score skips.
        input_shape: (H, W, C), H and W multiples of 32.
        num_classes: per-pixel classes.
        include_top: output per-pixel scores (H, W, num_classes); else fc7 features.
        pooling: with include_top=False, None / "avg" / "max" over the fc7 features.
        classifier_activation: applied per pixel to the upsampled scores.
        name: model name.
        width_multiplier: scales every VGG stage and fc6/fc7.
        fc_filters: fc6/fc7 width before the multiplier (4096 in the paper).
        dropout: after fc6 and fc7.
        stem_initializer: first-convolution initializer spec (:func:`models.initializers.get`).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not (H, W, C), H or W not a multiple of the total pooling,
            ``num_classes`` < 1 or an unknown ``pooling``; ``skips`` not 0, 1 or 2.
    """
    check_segmentation_args(input_shape, num_classes, include_top, pooling, 32, name)
    if skips not in (0, 1, 2):
        raise ValueError(f"skips={skips!r} must be 0 (32s), 1 (16s) or 2 (8s)")
    inputs = keras.Input(input_shape, name="image")
    x, pools, _ = vgg_encoder(
        inputs, width_multiplier=width_multiplier, stem_initializer=stem_initializer
    )
    fc = scaled(fc_filters, width_multiplier)
    x = layers.Conv2D(fc, 7, padding="same", activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Conv2D(fc, 1, activation="relu", name="fc7")(x)
    x = layers.Dropout(dropout, name="fc7_dropout")(x)
    if not include_top:
        return keras.Model(inputs, pooled_features(x, pooling), name=name)

    scores = layers.Conv2D(num_classes, 1, name="score_fr")(x)  # 1/32
    factor = 32
    for stage in (4, 3)[:skips]:
        scores = _upsample(scores, num_classes, 2, name=f"upscore_pool{stage}")
        # Zero-initialized skip scores make the fused net start out equal to the coarser one,
        # as in the paper's staged training.
        skip = layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score_pool{stage}")(
            pools[stage - 1]
        )
        scores = layers.Add(name=f"fuse_pool{stage}")([scores, skip])
        factor //= 2
    scores = _upsample(scores, num_classes, factor, name=f"upscore{factor}")
    outputs = layers.Activation(classifier_activation, dtype="float32", name="predictions")(scores)
    return keras.Model(inputs, outputs, name=name)


for _v in SKIPS:
    register(
        _v, family="fcn", paper=PAPER, kind="segmentation", test_input_shape=(32, 32, 3),
        first_conv="block1_1_conv",
        input_sizes="H, W multiples of 32",
        test_kwargs={"width_multiplier": 0.0625, "fc_filters": 256},
    )(variant(FCN, skips=SKIPS[_v], name=_v))  # fmt: skip
