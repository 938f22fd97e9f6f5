"""Densely connected networks (Huang et al. 2017, "Densely connected convolutional networks").

- DenseNet-121/169/201 (ImageNet, Table 1): four dense blocks of BN-ReLU-Conv1×1(4k)-BN-ReLU-
  Conv3×3(k) layers with growth rate k = 32, compression 0.5 in the transitions. Layer names
  and counts follow keras.applications (DenseNet-121: 8,062,504 parameters).
- DenseNet-BC(depth, growth_rate) for 32×32 images (§3, "Implementation details"): a 3×3
  conv with 2k filters, three dense blocks of (depth − 4)/6 bottleneck layers each; e.g.
  DenseNet-BC-100 with k = 12 has 0.8M parameters (Table 2).
"""

from __future__ import annotations

import keras
from convflow.models.common import check_args, check_choice, classifier_head, require_min_size
from convflow.models.registry import register, variant
from keras import layers

PAPER = "Huang et al. 2017, Densely connected convolutional networks"
BN_EPSILON = 1.001e-5  # keras.applications' value
IMAGENET = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}
STEMS = ("imagenet", "small")
# Three 2×2/2 'valid' transition pools need 8×8 maps after the stem (stride 4 or 1).
MIN_SIZE = {"imagenet": 29, "small": 8}


def bn_relu(x, name):
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def dense_layer(x, growth_rate, name):
    """Bottleneck layer (DenseNet-B): its k new maps are concatenated onto its input."""
    y = bn_relu(x, f"{name}_0")
    y = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = bn_relu(y, f"{name}_1")
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def dense_block(x, layers_count, growth_rate, name):
    for i in range(1, layers_count + 1):
        x = dense_layer(x, growth_rate, name=f"{name}_block{i}")
    return x


def transition(x, compression, name):
    """BN-ReLU-Conv1×1 to ⌊θ·C⌋ maps (DenseNet-C), then 2×2/2 average pooling."""
    x = bn_relu(x, name)
    x = layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, 2, name=f"{name}_pool")(x)


def _densenet(inputs, x, blocks, growth_rate, compression, first_block, head_args, name):
    for i, count in enumerate(blocks):
        x = dense_block(x, count, growth_rate, name=f"conv{first_block + i}")
        if i < len(blocks) - 1:
            x = transition(x, compression, name=f"pool{first_block + i}")
    x = bn_relu(x, "final")  # pre-activation layers leave the last block un-normalised
    return keras.Model(inputs, classifier_head(x, *head_args), name=name)


def DenseNet(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    depth=121,
    growth_rate=32,
    stem="imagenet",
):
    """Builds DenseNet-121/169/201.

    Args:
        input_shape: (H, W, C); ≥29×29 with the ImageNet stem, ≥8×8 with ``stem="small"``.
        num_classes: outputs of "predictions".
        include_top: global average pooling + "predictions"; else the final features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name; defaults to ``f"densenet{depth}"``.
        depth: 121, 169 or 201.
        growth_rate: k, maps each layer adds (paper: 32).
        stem: "imagenet" (7×7/2 conv + 3×3/2 max pool) or "small" (3×3/1 conv, no pool).

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take.
    """
    check_choice(depth, IMAGENET, "depth")
    check_choice(stem, STEMS, "stem")
    name = name or f"densenet{depth}"
    check_args(input_shape, num_classes, include_top, pooling, name=name)
    hint = "use stem='small' for small images" if stem == "imagenet" else ""
    require_min_size(input_shape, MIN_SIZE[stem], name, hint=hint)

    inputs = keras.Input(input_shape, name="images")
    if stem == "imagenet":
        x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
        x = layers.Conv2D(2 * growth_rate, 7, 2, use_bias=False, name="conv1_conv")(x)
        x = bn_relu(x, "conv1")
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, 2, name="pool1_pool")(x)  # (B, 56, 56, 64) at 224×224
    else:
        x = layers.Conv2D(2 * growth_rate, 3, padding="same", use_bias=False, name="conv1_conv")(
            inputs
        )
        x = bn_relu(x, "conv1")
    head = (num_classes, include_top, pooling, classifier_activation)
    return _densenet(inputs, x, IMAGENET[depth], growth_rate, 0.5, 2, head, name)


def DenseNetBC(
    input_shape=(32, 32, 3),
    num_classes=10,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name=None,
    depth=100,
    growth_rate=12,
    compression=0.5,
):
    """Builds DenseNet-BC for small images (CIFAR/SVHN layout of the paper).

    Args:
        input_shape: (H, W, C), ≥4×4 (two 2×2/2 transition pools; the paper uses 32×32).
        num_classes: outputs of "predictions".
        include_top: global average pooling + "predictions"; else the final features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of "predictions" (None for logits).
        name: model name; defaults to ``f"densenet_bc_{depth}_k{growth_rate}"``.
        depth: total layers L, with (L − 4) divisible by 6 (paper: 100, 190, 250).
        growth_rate: k (paper: 12, 24, 40).
        compression: θ, the transitions' channel reduction (0 < θ ≤ 1; paper: 0.5).

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take; ``depth`` not 6n+4, ``growth_rate`` < 1,
            ``compression`` outside (0, 1].
    """
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth={depth!r} must be 6n+4 with n ≥ 1 (paper: 100, 190, 250)")
    if not isinstance(growth_rate, int) or growth_rate < 1:
        raise ValueError(f"growth_rate={growth_rate!r} must be a positive int")
    if not 0 < compression <= 1:
        raise ValueError(f"compression={compression!r} must be in (0, 1]")
    name = name or f"densenet_bc_{depth}_k{growth_rate}"
    check_args(input_shape, num_classes, include_top, pooling, min_size=4, name=name)
    n = (depth - 4) // 6

    inputs = keras.Input(input_shape, name="images")
    x = layers.Conv2D(2 * growth_rate, 3, padding="same", use_bias=False, name="conv1_conv")(inputs)
    head = (num_classes, include_top, pooling, classifier_activation)
    return _densenet(inputs, x, (n, n, n), growth_rate, compression, 2, head, name)


for _depth in IMAGENET:
    register(
        f"densenet{_depth}",
        family="densenet",
        first_conv="conv1_conv",
        paper=PAPER,
        test_input_shape=(32, 32, 3),
        input_sizes="≥29×29; ≥8×8 with stem='small'",
        test_kwargs={"stem": "small"} if _depth == 121 else {},
    )(variant(DenseNet, depth=_depth))

register(
    "densenet_bc_100_k12",
    family="densenet",
    first_conv="conv1_conv",
    paper=f"{PAPER}, DenseNet-BC (L=100, k=12)",
    test_input_shape=(32, 32, 3),
    input_sizes="≥4×4 (32×32 in the paper)",
)(variant(DenseNetBC, depth=100, growth_rate=12))
