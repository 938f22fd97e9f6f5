"""YOLOv8 detector from keras-cv (Jocher et al. 2023, Ultralytics YOLOv8), built from scratch.

The one zoo entry bound to TensorFlow (``backend_agnostic=False``): keras-cv is imported inside
the builder so that importing ``models`` stays keras-only. No preset is used, because presets
download weights and this project runs without internet; the backbone is constructed from its
stage table (``STACKS``) instead, randomly initialized.

Output of a forward pass is keras-cv's raw training output, a dict ``{"boxes": (N, A, 64),
"classes": (N, A, num_classes)}`` over A anchor points (A = Σ (H/s)·(W/s) for s = 8, 16, 32);
``model.predict`` decodes and applies NMS (keras-cv's ``prediction_decoder``).
"""

from __future__ import annotations

from convflow.models.common import check_args
from convflow.models.registry import register

PAPER = "Jocher, Chaurasia & Qiu 2023, Ultralytics YOLOv8 (keras-cv implementation)"

# keras-cv's preset stage tables (channels, depth per stage), as data.
STACKS = {
    "xs": ((32, 64, 128, 256), (1, 2, 2, 1)),
    "s": ((64, 128, 256, 512), (1, 2, 2, 1)),
    "m": ((96, 192, 384, 576), (2, 4, 4, 2)),
    "l": ((128, 256, 512, 512), (3, 6, 6, 3)),
    "xl": ((160, 320, 640, 640), (3, 6, 6, 3)),
}
FPN_DEPTH = {"xs": 1, "s": 1, "m": 2, "l": 3, "xl": 3}


@register(
    "yolov8", family="yolov8", paper=PAPER, kind="detection", test_input_shape=(64, 64, 3),
    input_sizes="H, W multiples of 32", test_kwargs={"size": "xs", "width_multiplier": 0.25},
    backend_agnostic=False, classifier="class",
)  # fmt: skip
def YOLOv8(
    input_shape=(640, 640, 3), num_classes=80, include_top=True, pooling=None,
    classifier_activation="sigmoid", name="yolov8", size="s", width_multiplier=1.0,
    bounding_box_format="xyxy", include_rescaling=False,
):  # fmt: skip
    """Builds ``keras_cv.models.YOLOV8Detector`` on a randomly initialized backbone.

    Args:
        input_shape: (H, W, C), H and W multiples of 32 (the deepest feature stride).
        num_classes: object classes.
        include_top: the detector; False returns the ``YOLOV8Backbone`` alone (its pyramid
            outputs are internal; its output is the stride-32 feature map).
        pooling: with include_top=False, must be None (keras-cv backbones do not pool).
        classifier_activation: "sigmoid" or None, the same head: YOLOv8 scores classes
            independently and keras-cv's head and loss work on sigmoid probabilities (so the
            zoo's usual None, "end in logits", cannot be honoured here).
        name: model name.
        size: a key of ``STACKS`` ("xs" … "xl").
        width_multiplier: scales the stage channels (rounded to multiples of 8).
        bounding_box_format: keras-cv box format of labels and predictions.
        include_rescaling: let the backbone rescale 0–255 input itself.

    Returns:
        keras.Model (a keras-cv ``YOLOV8Detector`` or ``YOLOV8Backbone``).

    Raises:
        ValueError: an unknown ``size``; ``classifier_activation`` other than ``'sigmoid'``
            or None; any ``pooling``; H or W not a multiple of 32.
    """
    check_args(input_shape, num_classes, include_top, pooling, min_size=32, name=name)
    if size not in STACKS:
        raise ValueError(f"Unknown size={size!r}; expected one of {sorted(STACKS)}")
    if classifier_activation not in ("sigmoid", None):
        raise ValueError(
            f"classifier_activation={classifier_activation!r}: YOLOv8 uses 'sigmoid' only"
        )
    if not include_top and pooling is not None:
        raise ValueError(f"pooling={pooling!r}: the YOLOv8 backbone has no pooled output")
    bad = [d for d in input_shape[:2] if d is not None and d % 32]
    if bad:
        raise ValueError(f"{name} needs H and W multiples of 32; got input_shape={input_shape!r}")
    import keras_cv  # TensorFlow-bound; lazy so `models` stays keras-only

    channels, depth = STACKS[size]
    channels = [max(8, round(c * width_multiplier / 8) * 8) for c in channels]
    backbone = keras_cv.models.YOLOV8Backbone(
        stackwise_channels=channels, stackwise_depth=list(depth),
        include_rescaling=include_rescaling, activation="swish", input_shape=input_shape,
    )  # fmt: skip
    if not include_top:
        return backbone
    return keras_cv.models.YOLOV8Detector(
        num_classes=num_classes, bounding_box_format=bounding_box_format, backbone=backbone,
        fpn_depth=FPN_DEPTH[size], name=name,
    )  # fmt: skip
