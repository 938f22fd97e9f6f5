"""1-D convolutional classifiers for raw audio waveforms (Dai, Dai, Qu, Li & Das 2017, "Very
Deep Convolutional Neural Networks for Raw Waveforms").

The lecture's table: for an audio waveform the convolution runs over time, which makes the
features equivariant to shifts in time. Input is (T, C): T samples (32 000 = 4 s at 8 kHz in
the paper), C channels (1 for mono; joint angles for skeleton animation work the same way).
A wide first layer (80 samples, stride 4) acts as a learned filter bank; 3-tap convolutions
with batch norm and 4× max pooling follow, and global average pooling makes the classifier
independent of T. Variants M3–M18 differ only in their stage table (``VARIANTS``).

Inputs: T ≥ 4·4**pools (1024 for every variant here) and any T above it.
"""

from __future__ import annotations

import keras
from convflow.models.common import check_args, classifier_head
from convflow.models.initializers import stem_kernel_initializer
from convflow.models.registry import register, variant
from convflow.models.segmentation import scaled
from keras import layers

PAPER = "Dai et al. 2017, Very Deep Convolutional Neural Networks for Raw Waveforms"

# name: (stem filters, ((filters, convs, pooled), ...)); the stem (80/4) is always pooled ×4.
VARIANTS = {
    "audio_m3": (256, ((256, 1, True),)),
    "audio_m5": (128, ((128, 1, True), (256, 1, True), (512, 1, True))),
    "audio_m11": (64, ((64, 2, True), (128, 2, True), (256, 3, True), (512, 2, False))),
    "audio_m18": (64, ((64, 4, True), (128, 4, True), (256, 4, True), (512, 4, False))),
}


def conv1d_bn_relu(x, filters, kernel_size, name, strides=1, kernel_initializer="glorot_uniform"):
    x = layers.Conv1D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer=kernel_initializer, name=f"{name}_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def WaveformCNN(
    stem_filters, stages, input_shape=(32000, 1), num_classes=10, include_top=True,
    pooling=None, classifier_activation="softmax", name="waveform_cnn", width_multiplier=1.0,
    stem_initializer=None,
):  # fmt: skip
    """Builds an M-series waveform classifier from its stage table.

    Args:
        stem_filters: filters of the 80/4 first layer.
        stages: ``(filters, convs, pooled)`` per stage.
        input_shape: (T, C).
        num_classes: classes.
        include_top: Dense "predictions" on global-average-pooled features.
        pooling: with include_top=False, None (the (T', F) map) / "avg" / "max".
        classifier_activation: of the predictions.
        name: model name.
        width_multiplier: scales every layer's filters.
        stem_initializer: first-layer kernel initializer spec (a Keras name or Initializer;
            the hand-designed banks in :mod:`models.initializers` are 2-D only).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not a waveform (T, C); an unknown ``pooling``, ``num_classes`` <
            1, or an ``input_shape`` with a size < 1 or below the smallest the stages take.
    """
    pools = 1 + sum(pooled for _, _, pooled in stages)
    min_length = 4 * 4**pools
    check_args(input_shape, num_classes, include_top, pooling, min_size=min_length, name=name)
    if len(input_shape) != 2:
        raise ValueError(f"{name} takes waveforms (T, C); got input_shape={input_shape!r}")
    inputs = keras.Input(input_shape, name="waveform")
    x = conv1d_bn_relu(
        inputs, scaled(stem_filters, width_multiplier), 80, "stem", strides=4,
        kernel_initializer=stem_kernel_initializer(stem_initializer),
    )  # fmt: skip
    x = layers.MaxPooling1D(4, name="stem_pool")(x)
    for s, (filters, convs, pooled) in enumerate(stages, start=1):
        for c in range(1, convs + 1):
            x = conv1d_bn_relu(x, scaled(filters, width_multiplier), 3, f"block{s}_{c}")
        if pooled:
            x = layers.MaxPooling1D(4, name=f"block{s}_pool")(x)
    outputs = classifier_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


for _v in VARIANTS:
    register(
        _v,
        family="audio",
        paper=PAPER,
        test_input_shape=(1024, 1),
        input_sizes="waveforms (T, C), T ≥ 1024",
        test_kwargs={"width_multiplier": 0.125},
    )(variant(WaveformCNN, stem_filters=VARIANTS[_v][0], stages=VARIANTS[_v][1], name=_v))
