"""Dilated convolutions for dense prediction (Yu & Koltun 2016, "Multi-Scale Context
Aggregation by Dilated Convolutions").

Front-end: VGG-16 with pool4 and pool5 removed; every convolution after a removed pool is
dilated by 2 per removed pool (conv5: 2, fc6: 4), so the output stays at 1/8 resolution
without losing receptive field. It ends in 1×1 class scores (C = num_classes channels).

Context module (the lecture's table): seven 3×3 convolutions with dilations
1, 1, 2, 4, 8, 16, 1 (ReLU after each: "truncation") and a 1×1 output layer. The receptive
field grows exponentially, 3, 5, 9, 17, 33, 65, 67, 67, while the resolution never drops.
"basic" keeps C channels throughout; "large" widens to 2C…32C. Both start from the identity
(:class:`models.initializers.ConvIdentity`), so an untrained module passes the front-end's
scores through unchanged and training only adds context.

Inputs: H and W multiples of 8 (the front-end's three pools); scores are upsampled ×8
bilinearly to the input size.
"""

from __future__ import annotations

import keras
from convflow.models.initializers import ConvIdentity
from convflow.models.registry import register, variant
from convflow.models.segmentation import (
    check_segmentation_args,
    pooled_features,
    scaled,
    vgg_encoder,
)
from keras import layers

PAPER = "Yu & Koltun 2016, Multi-Scale Context Aggregation by Dilated Convolutions"

# (filters, convs, dilation, pooled): VGG-16 without pool4/pool5, later layers dilated.
FRONTEND_STAGES = ((64, 2, 1, True), (128, 2, 1, True), (256, 3, 1, True), (512, 3, 1, False),
                   (512, 3, 2, False))  # fmt: skip
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
# Output channels of layers 1–7 as multiples of C; layer 8 always has C.
CONTEXT_WIDTHS = {"basic": (1, 1, 1, 1, 1, 1, 1), "large": (2, 2, 4, 8, 16, 32, 32)}


def context_module(x, variant="basic", noise_stddev=0.0, seed=None, name="context"):
    """Appends the context module to ``x`` (B, h, w, C); returns (B, h, w, C).

    Args:
        x: class-score map; C is its channel count.
        variant: "basic" or "large".
        noise_stddev: σ of the noise in the identity initialization (the paper's "large"
            module uses a small σ so that widened copies can diverge).
        seed: noise seed.
        name: layer prefix: ``{name}_{1..8}``.
    """
    if variant not in CONTEXT_WIDTHS:
        raise ValueError(f"Unknown context={variant!r}; expected one of {sorted(CONTEXT_WIDTHS)}")
    c = x.shape[-1]
    init = ConvIdentity(channels=c, noise_stddev=noise_stddev, seed=seed)
    for i, (dilation, width) in enumerate(
        zip(CONTEXT_DILATIONS, CONTEXT_WIDTHS[variant], strict=True), 1
    ):
        x = layers.Conv2D(
            width * c, 3, padding="same", dilation_rate=dilation, activation="relu",
            kernel_initializer=init, name=f"{name}_{i}",
        )(x)  # fmt: skip
    return layers.Conv2D(c, 1, kernel_initializer=init, name=f"{name}_8")(x)


def build_context_module(channels, variant="basic", input_shape=(None, None), **kwargs):
    """The context module alone as a model, (h, w, channels) -> (h, w, channels)."""
    inputs = keras.Input((*input_shape, channels), name="scores")
    return keras.Model(inputs, context_module(inputs, variant, **kwargs), name=f"context_{variant}")


def Dilated(
    context, input_shape=(512, 512, 3), num_classes=21, include_top=True, pooling=None,
    classifier_activation="softmax", name="dilated", width_multiplier=1.0, fc_filters=4096,
    dropout=0.5, stem_initializer=None,
):  # fmt: skip
    """Builds the dilated front-end + context module ("Dilation8" in the paper).

    Args:
        context: "basic", "large" or None (front-end only).
        input_shape: (H, W, C), H and W multiples of 8.
        num_classes: per-pixel classes, also the context module's C.
        include_top: per-pixel scores (H, W, num_classes); else fc7 features (1/8 size).
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: per-pixel activation of the upsampled scores.
        name: model name.
        width_multiplier: scales the front-end's stages and fc6/fc7.
        fc_filters: fc6/fc7 width before the multiplier (4096).
        dropout: after fc6 and fc7.
        stem_initializer: first-convolution initializer spec (:func:`models.initializers.get`).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not (H, W, C), H or W not a multiple of the total pooling,
            ``num_classes`` < 1 or an unknown ``pooling``; an unknown context module variant.
    """
    check_segmentation_args(input_shape, num_classes, include_top, pooling, 8, name)
    inputs = keras.Input(input_shape, name="image")
    x, _, _ = vgg_encoder(
        inputs, FRONTEND_STAGES, width_multiplier, stem_initializer=stem_initializer
    )
    fc = scaled(fc_filters, width_multiplier)
    x = layers.Conv2D(fc, 7, padding="same", dilation_rate=4, activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Conv2D(fc, 1, activation="relu", name="fc7")(x)
    x = layers.Dropout(dropout, name="fc7_dropout")(x)
    if not include_top:
        return keras.Model(inputs, pooled_features(x, pooling), name=name)
    x = layers.Conv2D(num_classes, 1, name="final")(x)
    if context is not None:
        x = context_module(x, context)
    x = layers.UpSampling2D(8, interpolation="bilinear", name="upsample")(x)
    outputs = layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


for _context in CONTEXT_WIDTHS:
    register(
        f"dilated_{_context}", family="dilated", paper=PAPER, kind="segmentation",
        first_conv="block1_1_conv",
        test_input_shape=(32, 32, 3),
        input_sizes="H, W multiples of 8",
        test_kwargs={"width_multiplier": 0.0625, "fc_filters": 128},
    )(variant(Dilated, context=_context, name=f"dilated_{_context}"))  # fmt: skip
