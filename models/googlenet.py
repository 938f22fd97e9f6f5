"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions").

Inception modules with 1×1 reductions before the 3×3 and 5×5 convolutions (Table 1), global
average pooling instead of fully connected layers, and optional auxiliary classifiers on
4a and 4d (§5).

Training with the auxiliary classifiers: with ``aux_classifiers=True`` the model returns a
dict ``{"predictions", "aux1_predictions", "aux2_predictions"}``; the paper weighted the
auxiliary losses by 0.3 and dropped the heads at inference::

    model.compile(
        optimizer="sgd",
        loss={k: "sparse_categorical_crossentropy" for k in model.output_names},
        loss_weights={"predictions": 1.0, "aux1_predictions": 0.3, "aux2_predictions": 0.3},
    )
    ds = ds.map(lambda x, y: (x, {k: y for k in model.output_names}))

For inference keep only the main head:
``keras.Model(model.input, model.get_layer("predictions").output)``.
"""

from __future__ import annotations

import keras
from convflow.models.common import check_args, check_choice, classifier_head, require_min_size
from convflow.models.layers.lrn import LocalResponseNormalization
from convflow.models.registry import register, variant
from keras import layers

PAPER = "Szegedy et al. 2015, Going deeper with convolutions (GoogLeNet)"

# Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
# Modules by stage; a 3×3/2 max pool separates the stages.
STAGES = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}
# "small" drops the 7×7/2 conv1 stride and the pool after it (total stride 8 instead of 32).
STEMS = {"imagenet": {"kernel": 7, "strides": 2, "pool": True}, "small": {"kernel": 3,
         "strides": 1, "pool": False}}  # fmt: skip
# The auxiliary heads' 5×5/3 average pool needs 5×5 maps at 4a (stride 16 or 4 from the input).
AUX_MIN_SIZE = {"imagenet": 65, "small": 17}


def conv_relu(x, filters, kernel, strides=1, name=None):
    return layers.Conv2D(filters, kernel, strides, "same", activation="relu", name=name)(x)


def inception_module(x, widths, name):
    """Four parallel branches concatenated on channels (Fig. 2b)."""
    b1, r3, b3, r5, b5, proj = widths
    branch1 = conv_relu(x, b1, 1, name=f"{name}_1x1")
    branch3 = conv_relu(conv_relu(x, r3, 1, name=f"{name}_3x3_reduce"), b3, 3, name=f"{name}_3x3")
    branch5 = conv_relu(conv_relu(x, r5, 1, name=f"{name}_5x5_reduce"), b5, 5, name=f"{name}_5x5")
    pool = layers.MaxPooling2D(3, 1, "same", name=f"{name}_pool")(x)
    branch_pool = conv_relu(pool, proj, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=f"{name}_concat")([branch1, branch3, branch5, branch_pool])


def aux_classifier(x, num_classes, classifier_activation, name):
    """§5: 5×5/3 average pool, 1×1 conv 128, fc 1024, dropout 0.7, classifier."""
    x = layers.AveragePooling2D(5, 3, name=f"{name}_pool")(x)
    x = conv_relu(x, 128, 1, name=f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name=f"{name}_predictions"
    )(x)


def GoogLeNet(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    name="googlenet",
    stem="imagenet",
    aux_classifiers=False,
    lrn=True,
    dropout=0.4,
):
    """Builds GoogLeNet.

    Args:
        input_shape: (H, W, C); any size without auxiliary heads, else ≥65×65 (≥17×17 with
            ``stem="small"``).
        num_classes: outputs of "predictions" (and of the auxiliary heads).
        include_top: build the classifier(s); else return the 5b features.
        pooling: None, "avg" or "max" pooling of the features when include_top is False.
        classifier_activation: activation of the classifiers (None for logits).
        name: model name.
        stem: "imagenet" (7×7/2 conv + 3×3/2 pool) or "small" (3×3/1 conv, no pool).
        aux_classifiers: add the two auxiliary heads as extra outputs (see module docstring).
        lrn: local response normalization in the stem, as in the paper's Fig. 3.
        dropout: rate before "predictions" (paper: 0.4).

    Returns:
        keras.Model: (B, H, W, C) → (B, num_classes), or a dict of three such outputs with
        ``aux_classifiers``, or (B, h, w, 1024) features.

    Raises:
        ValueError: an unknown ``pooling``, ``num_classes`` < 1, or an ``input_shape`` with a size <
            1 or below the smallest the stages take.
    """
    check_args(input_shape, num_classes, include_top, pooling, name=name)
    check_choice(stem, STEMS, "stem")
    aux = aux_classifiers and include_top
    if aux:
        hint = "use stem='small' or aux_classifiers=False" if stem == "imagenet" else ""
        require_min_size(input_shape, AUX_MIN_SIZE[stem], f"{name} with aux_classifiers", hint)

    inputs = keras.Input(input_shape, name="images")
    spec = STEMS[stem]
    x = conv_relu(inputs, 64, spec["kernel"], spec["strides"], name="conv1")
    if spec["pool"]:
        x = layers.MaxPooling2D(3, 2, "same", name="pool1")(x)
    if lrn:
        x = LocalResponseNormalization(name="pool1_lrn")(x)
    x = conv_relu(x, 64, 1, name="conv2_reduce")
    x = conv_relu(x, 192, 3, name="conv2")
    if lrn:
        x = LocalResponseNormalization(name="conv2_lrn")(x)
    x = layers.MaxPooling2D(3, 2, "same", name="pool2")(x)  # (B, 28, 28, 192) at 224×224

    aux_outputs = {}
    for stage, modules in enumerate(STAGES, start=3):
        if stage > 3:
            x = layers.MaxPooling2D(3, 2, "same", name=f"pool{stage - 1}")(x)
        for module in modules:
            x = inception_module(x, INCEPTION[module], name=f"inception{module}")
            if aux and module in AUX_AFTER:
                head = AUX_AFTER[module]
                aux_outputs[f"{head}_predictions"] = aux_classifier(
                    x, num_classes, classifier_activation, head
                )
    # (B, 7, 7, 1024) at 224×224

    outputs = classifier_head(
        x, num_classes, include_top, pooling, classifier_activation, dropout=dropout
    )
    if aux:
        outputs = {"predictions": outputs, **aux_outputs}
    return keras.Model(inputs, outputs, name=name)


register(
    "googlenet",
    family="googlenet",
    first_conv="conv1",
    paper=PAPER,
    test_input_shape=(32, 32, 3),
    input_sizes="any H×W; aux heads: ≥65×65, ≥17×17 with stem='small'",
    test_kwargs={"stem": "small", "aux_classifiers": True},
)(variant(GoogLeNet, name="googlenet"))
