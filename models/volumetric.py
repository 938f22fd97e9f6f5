"""3-D convolutional classifiers for video and volumetric data.

The lecture's table: colour video convolves over time, height and width (D = frames);
volumetric data (CT scans, voxel grids) over three spatial axes. Both take (D, H, W, C).

- C3D (Tran, Bourdev, Fergus, Torresani & Paluri 2015, "Learning Spatiotemporal Features with
  3D Convolutional Networks"): 3×3×3 convolutions throughout; pool1 is 1×2×2 so early layers
  keep temporal detail, the rest are 2×2×2; fc6/fc7 of 4096. Input 16×112×112×3 in the paper.
- VoxNet (Maturana & Scherer 2015, "VoxNet: A 3D Convolutional Neural Network for Real-Time
  Object Recognition"): 32³ occupancy grids, conv 5³/2 and 3³, a 2³ pool, fc 128.

Pools use "same" padding, so any D, H, W at or above the minimum works; flattening into the
fully connected layers needs them fixed.
"""

from __future__ import annotations

import keras
from convflow.models.common import check_args, classifier_head
from convflow.models.initializers import stem_kernel_initializer
from convflow.models.registry import register
from convflow.models.segmentation import scaled
from keras import layers

C3D_PAPER = "Tran et al. 2015, Learning Spatiotemporal Features with 3D Convolutional Networks"
VOXNET_PAPER = "Maturana & Scherer 2015, VoxNet: A 3D CNN for Real-Time Object Recognition"

# (filters, convs, pool size) per stage.
C3D_STAGES = ((64, 1, (1, 2, 2)), (128, 1, 2), (256, 2, 2), (512, 2, 2), (512, 2, 2))


def _check_volume(input_shape, name):
    if len(input_shape) != 4 or None in input_shape[:3]:
        raise ValueError(
            f"{name} takes fixed volumes (D, H, W, C) (video: frames first); "
            f"got input_shape={input_shape!r}"
        )


@register(
    "c3d", family="c3d", paper=C3D_PAPER, test_input_shape=(8, 32, 32, 3),
    input_sizes="fixed (D, H, W, C); video 16×112×112×3",
    test_kwargs={"width_multiplier": 0.0625, "fc_units": 64},
)  # fmt: skip
def C3D(
    input_shape=(16, 112, 112, 3), num_classes=101, include_top=True, pooling=None,
    classifier_activation="softmax", name="c3d", stages=C3D_STAGES, width_multiplier=1.0,
    fc_units=4096, dropout=0.5, stem_initializer=None,
):  # fmt: skip
    """Builds C3D.

    Args:
        input_shape: (frames, H, W, C), fixed.
        num_classes: classes (101 on UCF101).
        include_top: fc6/fc7 + Dense "predictions"; else the conv features.
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: of the predictions.
        name: model name.
        stages: ``(filters, convs, pool)`` table.
        width_multiplier: scales every convolution.
        fc_units: fc6/fc7 width (4096).
        dropout: after fc6 and fc7.
        stem_initializer: first convolution's initializer spec (Keras name or Initializer).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not a fixed volume (D, H, W, C); an unknown ``pooling``,
            ``num_classes`` < 1, or an ``input_shape`` with a size < 1 or below the smallest the
            stages take.
    """
    check_args(input_shape, num_classes, include_top, pooling, min_size=1, name=name)
    _check_volume(input_shape, name)
    inputs = keras.Input(input_shape, name="video")
    x = inputs
    for s, (filters, convs, pool) in enumerate(stages, start=1):
        for c in range(1, convs + 1):
            init = stem_kernel_initializer(stem_initializer if (s, c) == (1, 1) else None)
            x = layers.Conv3D(
                scaled(filters, width_multiplier), 3, padding="same", activation="relu",
                kernel_initializer=init, name=f"conv{s}{'abcd'[c - 1]}",
            )(x)  # fmt: skip
        x = layers.MaxPooling3D(pool, padding="same", name=f"pool{s}")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for fc in ("fc6", "fc7"):
            x = layers.Dense(fc_units, activation="relu", name=fc)(x)
            x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
    outputs = classifier_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


@register(
    "voxnet", family="voxnet", paper=VOXNET_PAPER, test_input_shape=(16, 16, 16, 1),
    input_sizes="fixed (D, H, W, C), sides ≥ 12; 32³×1 occupancy in the paper",
)  # fmt: skip
def VoxNet(
    input_shape=(32, 32, 32, 1), num_classes=10, include_top=True, pooling=None,
    classifier_activation="softmax", name="voxnet", filters=32, fc_units=128,
    stem_initializer=None,
):  # fmt: skip
    """Builds VoxNet.

    Args:
        input_shape: (D, H, W, C), fixed, every side ≥ 12.
        num_classes: classes (10 on ModelNet10).
        include_top: fc 128 + Dense "predictions"; else the pooled conv features map.
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: of the predictions.
        name: model name.
        filters: both convolutions' filters (32).
        fc_units: hidden fully connected width (128).
        stem_initializer: first convolution's initializer spec (Keras name or Initializer).

    Returns:
        keras.Model.

    Raises:
        ValueError: ``input_shape`` not a fixed volume (D, H, W, C); an unknown ``pooling``,
            ``num_classes`` < 1, or an ``input_shape`` with a size < 1 or below the smallest the
            stages take.
    """
    check_args(input_shape, num_classes, include_top, pooling, min_size=12, name=name)
    _check_volume(input_shape, name)
    inputs = keras.Input(input_shape, name="voxels")
    x = layers.Conv3D(
        filters, 5, strides=2, kernel_initializer=stem_kernel_initializer(stem_initializer),
        name="conv1",
    )(inputs)  # fmt: skip
    x = layers.LeakyReLU(0.1, name="conv1_leaky")(x)
    x = layers.Dropout(0.2, name="conv1_dropout")(x)
    x = layers.Conv3D(filters, 3, name="conv2")(x)
    x = layers.LeakyReLU(0.1, name="conv2_leaky")(x)
    x = layers.MaxPooling3D(2, name="pool2")(x)
    x = layers.Dropout(0.3, name="pool2_dropout")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(fc_units, activation="relu", name="fc1")(x)
        x = layers.Dropout(0.4, name="fc1_dropout")(x)
    outputs = classifier_head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)
