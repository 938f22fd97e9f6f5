"""Pieces the segmentation families share: argument checks, the VGG-style encoder, the head.

Segmentation builders (``fcn``, ``deconvnet``, ``segnet``, ``unet``, ``dilated``) keep the zoo's
signature; their output is (H, W, num_classes) per-pixel scores at the input resolution, with
``classifier_activation`` (default softmax) applied over the class axis. With
``include_top=False`` they return the last feature map before the per-pixel classifier, globally
pooled when ``pooling`` is "avg"/"max".

Encoder–decoder models pool ``depth`` times, so H and W must be divisible by 2**depth
(32 for the VGG-16 encoders): :func:`check_segmentation_args` says so in one line instead of
letting a Concatenate or an unpooling fail on mismatched shapes deep inside the graph.
"""

from __future__ import annotations

from convflow.models.common import check_args
from convflow.models.initializers import stem_kernel_initializer
from convflow.models.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
from keras import layers

# Simonyan & Zisserman 2015, configuration D: (filters, convs) per stage, each followed by a
# 2×2 max pool. The FCN, DeconvNet, SegNet and Dilation front-ends are all built on it.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def scaled(filters, width_multiplier):
    """Channel count after the width multiplier (at least 1)."""
    return max(1, round(filters * width_multiplier))


def check_segmentation_args(input_shape, num_classes, include_top, pooling, divisor, name):
    """The shared checks plus "H and W divisible by ``divisor``" (None sizes are allowed)."""
    check_args(input_shape, num_classes, include_top, pooling, min_size=divisor, name=name)
    if len(input_shape) != 3:
        raise ValueError(f"{name} takes images (H, W, C); got input_shape={input_shape!r}")
    bad = [d for d in input_shape[:2] if d is not None and d % divisor]
    if bad:
        fit = tuple(-(-d // divisor) * divisor if d else d for d in input_shape[:2])
        raise ValueError(
            f"{name} pools down by {divisor}, so H and W must be multiples of {divisor}; got "
            f"input_shape={input_shape!r} (pad or resize to e.g. {fit[0]}×{fit[1]})"
        )


def conv_bn_relu(x, filters, name, kernel_size=3, batch_norm=True, dilation=1, **conv_kwargs):
    """3×3 convolution (+ batch norm) + ReLU, layers named ``{name}_conv/_bn/_relu``."""
    x = layers.Conv2D(
        filters, kernel_size, padding="same", dilation_rate=dilation, use_bias=not batch_norm,
        name=f"{name}_conv", **conv_kwargs,
    )(x)  # fmt: skip
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def vgg_encoder(
    x, stages=VGG16_STAGES, width_multiplier=1.0, batch_norm=False, pool="max",
    stem_initializer=None, name="block",
):  # fmt: skip
    """VGG-style stages: ``convs`` 3×3 convolutions then a 2×2 pool.

    Args:
        x: input tensor (B, H, W, C).
        stages: ``(filters, convs)`` or ``(filters, convs, dilation, pooled)`` per stage.
        width_multiplier: scales every stage's filters.
        batch_norm: BN after every convolution (SegNet, DeconvNet).
        pool: "max" (MaxPooling2D) or "argmax" (MaxPoolingWithArgmax2D, keeps switches).
        stem_initializer: spec for :func:`models.initializers.get`, first convolution only.
        name: layer prefix; layers are ``{name}{stage}_{conv}_conv`` and ``{name}{stage}_pool``.

    Returns:
        ``(x, stage_outputs, switches)``: the output, each stage's (pooled) output, and the
        pooling switches (empty unless ``pool="argmax"``).
    """
    stage_outputs, switches = [], []
    for s, stage in enumerate(stages, start=1):
        filters, convs, dilation, pooled = (*stage, 1, True) if len(stage) == 2 else stage
        for c in range(1, convs + 1):
            init = stem_kernel_initializer(stem_initializer) if (s, c) == (1, 1) else None
            kwargs = {"kernel_initializer": init} if init is not None else {}
            x = conv_bn_relu(
                x, scaled(filters, width_multiplier), f"{name}{s}_{c}", batch_norm=batch_norm,
                dilation=dilation, **kwargs,
            )  # fmt: skip
        if pooled and pool == "argmax":
            x, switch = MaxPoolingWithArgmax2D(2, name=f"{name}{s}_pool")(x)
            switches.append(switch)
        elif pooled:
            x = layers.MaxPooling2D(2, name=f"{name}{s}_pool")(x)
        stage_outputs.append(x)
    return x, stage_outputs, switches


def unpooling_decoder(x, switches, stages, width_multiplier, block, prefix):
    """The mirrored VGG decoder of DeconvNet and SegNet.

    From the deepest stage up: unpool with that encoder stage's switches, then ``block``
    layers (convolutions for SegNet, transposed convolutions for DeconvNet), the last one
    narrowing to the width of the stage above.
    """
    for s in range(len(stages), 0, -1):  # e.g. 5, 4, ..., 1
        filters, convs = stages[s - 1][:2]
        out_filters = stages[s - 2][0] if s > 1 else filters
        x = MaxUnpooling2D(2, name=f"{prefix}{s}_unpool")([x, switches[s - 1]])
        for c in range(convs, 0, -1):
            width = out_filters if c == 1 else filters
            x = block(x, scaled(width, width_multiplier), f"{prefix}{s}_{c}")
    return x


def segmentation_head(x, num_classes, include_top, pooling, classifier_activation):
    """1×1 convolution to per-pixel class scores ("predictions", float32), or the features."""
    if include_top:
        return layers.Conv2D(
            num_classes, 1, activation=classifier_activation, dtype="float32",
            name="predictions",
        )(x)  # fmt: skip
    return pooled_features(x, pooling)


def pooled_features(x, pooling):
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x
