"""DeconvNet (Noh, Hong & Han 2015, "Learning Deconvolution Network for Semantic
Segmentation").

A VGG-16 convolution network (with batch norm, keeping its pooling switches) ends in fc6/fc7
applied as convolutions that cover the whole 1/32 map (7×7 at 224×224), so fc7 is a 1×1
summary of the image. The mirrored deconvolution network grows it back: a transposed fc6,
then per stage an *unpooling* that puts activations back at their switch positions and
*deconvolutions* (transposed convolutions) that densify the sparse maps.

Inputs: fixed H and W (the fc6 kernel equals the 1/32 map), multiples of 32, ≥ 32.
"""

from __future__ import annotations

import keras
from convflow.models.registry import register
from convflow.models.segmentation import (
    VGG16_STAGES,
    check_segmentation_args,
    scaled,
    segmentation_head,
    unpooling_decoder,
    vgg_encoder,
)
from keras import layers

PAPER = "Noh, Hong & Han 2015, Learning Deconvolution Network for Semantic Segmentation"


def deconv_bn_relu(x, filters, name, kernel_size=3, padding="same"):
    """Transposed convolution + batch norm + ReLU (the paper's "deconvolution" layer)."""
    x = layers.Conv2DTranspose(
        filters, kernel_size, padding=padding, use_bias=False, name=f"{name}_deconv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


@register(
    "deconvnet", family="deconvnet", paper=PAPER, kind="segmentation", first_conv="conv1_1_conv",
    test_input_shape=(32, 32, 3), input_sizes="fixed H, W multiples of 32 (224 in the paper)",
    test_kwargs={"width_multiplier": 0.0625, "fc_filters": 64},
)  # fmt: skip
def DeconvNet(
    input_shape=(224, 224, 3), num_classes=21, include_top=True, pooling=None,
    classifier_activation="softmax", name="deconvnet", stages=VGG16_STAGES,
    width_multiplier=1.0, fc_filters=4096, stem_initializer=None,
):  # fmt: skip
    """Builds DeconvNet.

    Args:
        input_shape: (H, W, C) with H and W known and multiples of 2**len(stages).
        num_classes: per-pixel classes (21 on PASCAL VOC).
        include_top: per-pixel scores (H, W, num_classes); else decoder features.
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: per-pixel activation of the scores.
        name: model name.
        stages: encoder ``(filters, convs)`` table; the deconvolution network mirrors it.
        width_multiplier: scales every stage and fc6/fc7.
        fc_filters: fc6/fc7 width before the multiplier (4096 in the paper).
        stem_initializer: first-convolution initializer spec (:func:`models.initializers.get`).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not (H, W, C), H or W not a multiple of the total pooling,
            ``num_classes`` < 1 or an unknown ``pooling``; H or W not fixed (fc6 spans the whole
            map).
    """
    divisor = 2 ** len(stages)
    check_segmentation_args(input_shape, num_classes, include_top, pooling, divisor, name)
    if None in input_shape[:2]:
        raise ValueError(
            f"{name} needs a fixed H and W (fc6 spans the whole 1/{divisor} map); "
            f"got input_shape={input_shape!r}"
        )
    inputs = keras.Input(input_shape, name="image")
    x, _, switches = vgg_encoder(
        inputs, stages, width_multiplier, batch_norm=True, pool="argmax",
        stem_initializer=stem_initializer, name="conv",
    )  # fmt: skip
    bottleneck = (input_shape[0] // divisor, input_shape[1] // divisor)
    fc = scaled(fc_filters, width_multiplier)
    x = layers.Conv2D(fc, bottleneck, use_bias=False, name="fc6_conv")(x)  # (B, 1, 1, fc)
    x = layers.Activation("relu", name="fc6_relu")(layers.BatchNormalization(name="fc6_bn")(x))
    x = layers.Conv2D(fc, 1, use_bias=False, name="fc7_conv")(x)
    x = layers.Activation("relu", name="fc7_relu")(layers.BatchNormalization(name="fc7_bn")(x))
    x = deconv_bn_relu(
        x, scaled(stages[-1][0], width_multiplier), "fc6_deconv", bottleneck, padding="valid"
    )
    x = unpooling_decoder(x, switches, stages, width_multiplier, deconv_bn_relu, "deconv")
    outputs = segmentation_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)
