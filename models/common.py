"""Argument checks and the generic classifier head every classification builder shares."""

from __future__ import annotations

from keras import layers

POOLINGS = (None, "avg", "max")


def check_args(input_shape, num_classes, include_top, pooling, min_size=1, name="model"):
    """Validates the shared builder arguments; errors name the bad value and what is allowed.

    Args:
        input_shape: (H, W, C) tuple (or (T, C) / (D, H, W, C) for other data types).
        num_classes: positive number of classes.
        include_top: whether the classifier head is built.
        pooling: None, "avg" or "max" (used when include_top is False).
        min_size: smallest spatial side the architecture accepts.
        name: model name, used in the message.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling={pooling!r}; expected None, 'avg' or 'max'")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} must be a positive int")
    if input_shape is None or any(d is not None and d < 1 for d in input_shape):
        raise ValueError(f"input_shape={input_shape!r} must be a tuple of positive sizes")
    spatial = [d for d in input_shape[:-1] if d is not None]
    if spatial and min(spatial) < min_size:
        raise ValueError(
            f"{name} needs inputs of at least {min_size}×{min_size}; "
            f"got input_shape={input_shape!r}"
        )


def classifier_head(x, num_classes, include_top, pooling, classifier_activation, dropout=0.0):
    """Global pooling + (dropout) + Dense "predictions", or the pooled/unpooled features.

    Works on 1-D (N, T, C), 2-D (N, H, W, C) and 3-D (N, D, H, W, C) feature maps. The
    predictions layer is float32 so mixed precision never softmaxes in half precision.
    """
    avg, peak = _GLOBAL_POOLS.get(len(x.shape), (None, None))
    if include_top:
        x = avg(name="avg_pool")(x) if avg else x
        if dropout:
            x = layers.Dropout(dropout, name="head_dropout")(x)
        return layers.Dense(
            num_classes, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)
    if pooling == "avg" and avg:
        return avg(name="avg_pool")(x)
    if pooling == "max" and peak:
        return peak(name="max_pool")(x)
    return x


# feature-map rank (batch included) -> (global average pooling, global max pooling)
_GLOBAL_POOLS = {
    3: (layers.GlobalAveragePooling1D, layers.GlobalMaxPooling1D),
    4: (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D),
    5: (layers.GlobalAveragePooling3D, layers.GlobalMaxPooling3D),
}


def check_choice(value, choices, what):
    """Raises ``ValueError`` naming ``what``, the bad value and the allowed ones."""
    if value not in choices:
        raise ValueError(f"Unknown {what}={value!r}; expected one of {tuple(choices)}")


def require_min_size(input_shape, min_size, name, hint=""):
    """Like check_args' size check, with a hint (e.g. which knob accepts smaller inputs)."""
    spatial = [d for d in input_shape[:-1] if d is not None]
    if spatial and min(spatial) < min_size:
        raise ValueError(
            f"{name} needs inputs of at least {min_size}×{min_size}; got "
            f"input_shape={tuple(input_shape)!r}" + (f"; {hint}" if hint else "")
        )


def dense_head(x, num_classes, classifier_activation, units=(), dropout=0.0, activation="relu"):
    """Flatten + fully connected layers ``fc1, fc2, …`` + float32 "predictions".

    The classic head of LeNet, AlexNet and VGG, whose parameter counts depend on the size of
    the last feature map (unlike the global-pooling head of :func:`classifier_head`).
    """
    x = layers.Flatten(name="flatten")(x)
    for i, width in enumerate(units, start=1):
        x = layers.Dense(width, activation=activation, name=f"fc{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
