"""SegNet (Badrinarayanan, Kendall & Cipolla 2015/2017, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation").

The encoder is VGG-16's 13 convolutions with batch norm; every 2×2 max pool keeps its switches.
Each decoder stage unpools with the switches of the matching encoder stage (no learned
upsampling and no copied feature maps, only indices) and densifies the sparse map with
3×3 convolutions; the last convolution of a stage narrows to the next stage's width.

Inputs: H and W multiples of 32 (≥ 32).
"""

from __future__ import annotations

import keras
from convflow.models.registry import register
from convflow.models.segmentation import (
    VGG16_STAGES,
    check_segmentation_args,
    conv_bn_relu,
    segmentation_head,
    unpooling_decoder,
    vgg_encoder,
)

PAPER = "Badrinarayanan, Kendall & Cipolla 2015, SegNet"


@register(
    "segnet", family="segnet", paper=PAPER, kind="segmentation", test_input_shape=(32, 32, 3),
    first_conv="encoder1_1_conv",
    input_sizes="H, W multiples of 32", test_kwargs={"width_multiplier": 0.0625},
)  # fmt: skip
def SegNet(
    input_shape=(224, 224, 3), num_classes=12, include_top=True, pooling=None,
    classifier_activation="softmax", name="segnet", stages=VGG16_STAGES, width_multiplier=1.0,
    stem_initializer=None,
):  # fmt: skip
    """Builds SegNet.

    Args:
        input_shape: (H, W, C), H and W multiples of 2**len(stages).
        num_classes: per-pixel classes (11 + void on CamVid in the paper).
        include_top: per-pixel scores (H, W, num_classes); else decoder features (H, W, 64·w).
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: per-pixel activation of the scores.
        name: model name.
        stages: encoder ``(filters, convs)`` table; the decoder mirrors it.
        width_multiplier: scales every stage.
        stem_initializer: first-convolution initializer spec (:func:`models.initializers.get`).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not (H, W, C), H or W not a multiple of the total pooling,
            ``num_classes`` < 1 or an unknown ``pooling``.
    """
    check_segmentation_args(input_shape, num_classes, include_top, pooling, 2 ** len(stages), name)
    inputs = keras.Input(input_shape, name="image")
    x, _, switches = vgg_encoder(
        inputs, stages, width_multiplier, batch_norm=True, pool="argmax",
        stem_initializer=stem_initializer, name="encoder",
    )  # fmt: skip
    x = unpooling_decoder(x, switches, stages, width_multiplier, conv_bn_relu, "decoder")
    outputs = segmentation_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)
