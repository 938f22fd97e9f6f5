"""U-Net (Ronneberger, Fischer & Brox 2015, "U-Net: Convolutional Networks for Biomedical
Image Segmentation").

A contracting path (two 3×3 convolutions + ReLU, then a 2×2 max pool, doubling the width at
each level) and an expanding path (2×2 up-convolution halving the width, concatenation with
the contracting feature map of the same level, two 3×3 convolutions). The skip concatenations
give the decoder the full-resolution detail that pooling removed.

Deviation: "same" padding instead of the paper's unpadded convolutions, so the output map has
the input's size and no cropping of the skips is needed (the paper maps 572² to 388²).
Inputs: H and W multiples of 2**depth (16 by default).
"""

from __future__ import annotations

import keras
from convflow.models.initializers import stem_kernel_initializer
from convflow.models.registry import register
from convflow.models.segmentation import check_segmentation_args, conv_bn_relu, segmentation_head
from keras import layers

PAPER = "Ronneberger, Fischer & Brox 2015, U-Net"


def unet_level(x, filters, batch_norm, name, first_initializer=None):
    kwargs = {"kernel_initializer": first_initializer} if first_initializer is not None else {}
    x = conv_bn_relu(x, filters, f"{name}_1", batch_norm=batch_norm, **kwargs)
    return conv_bn_relu(x, filters, f"{name}_2", batch_norm=batch_norm)


@register(
    "unet", family="unet", paper=PAPER, kind="segmentation", test_input_shape=(32, 32, 3),
    first_conv="down1_1_conv",
    input_sizes="H, W multiples of 2**depth (16)", test_kwargs={"base_filters": 4, "depth": 2},
)  # fmt: skip
def UNet(
    input_shape=(256, 256, 1), num_classes=2, include_top=True, pooling=None,
    classifier_activation="softmax", name="unet", depth=4, base_filters=64, batch_norm=False,
    dropout=0.5, stem_initializer=None,
):  # fmt: skip
    """Builds a U-Net.

    Args:
        input_shape: (H, W, C), H and W multiples of 2**depth.
        num_classes: per-pixel classes (2 in the paper's cell segmentation).
        include_top: per-pixel scores (H, W, num_classes); else the last decoder features.
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: per-pixel activation of the scores.
        name: model name.
        depth: number of poolings (4 in the paper).
        base_filters: width of the first level (64); level i has base·2**i.
        batch_norm: add BN after every convolution (later practice; not in the paper).
        dropout: at the end of the contracting path, as in the paper.
        stem_initializer: first-convolution initializer spec (:func:`models.initializers.get`).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not (H, W, C), H or W not a multiple of the total pooling,
            ``num_classes`` < 1 or an unknown ``pooling``; ``depth`` < 1.
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth={depth!r} must be a positive int")
    check_segmentation_args(input_shape, num_classes, include_top, pooling, 2**depth, name)
    inputs = keras.Input(input_shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        init = stem_kernel_initializer(stem_initializer) if level == 0 else None
        x = unet_level(x, base_filters * 2**level, batch_norm, f"down{level + 1}", init)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = unet_level(x, base_filters * 2**depth, batch_norm, "bottom")
    x = layers.Dropout(dropout, name="bottom_dropout")(x)
    for level in range(depth, 0, -1):
        filters = base_filters * 2 ** (level - 1)
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_upconv")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([skips[level - 1], x])
        x = unet_level(x, filters, batch_norm, f"up{level}")
    outputs = segmentation_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)
