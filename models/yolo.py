"""YOLO v1 (Redmon, Divvala, Girshick & Farhadi 2016, "You Only Look Once: Unified, Real-Time
Object Detection"): model, loss, target encoding, decoding and non-max suppression.

The image is split into an S×S grid. Each cell predicts B boxes (x, y, √w, √h, confidence)
and one set of C conditional class probabilities, so the output is (S, S, B·5 + C) with the
layout ``[box_1 … box_B, classes]``, box = (x, y, √w, √h, conf):

- x, y: the box centre inside the cell, in cell units ([0, 1]);
- √w, √h: square roots of the box size as a fraction of the image (the paper predicts the
  roots so that an error on a small box costs more than the same error on a large one);
- conf: Pr(object) · IoU(pred, truth).

Targets (:func:`encode_targets`) are (S, S, 5 + C): ``[x, y, w, h, has_object, one-hot class]``
with one object per cell (the centre cell), as in the paper. Post-processing is numpy.
"""

from __future__ import annotations

import keras
import numpy as np
from convflow.models.common import check_args
from convflow.models.initializers import stem_kernel_initializer
from convflow.models.registry import register
from convflow.models.segmentation import pooled_features, scaled
from keras import layers, ops

PAPER = "Redmon et al. 2016, You Only Look Once: Unified, Real-Time Object Detection"

# The paper's 24 convolutional layers, (kernel, filters, stride) per stage; every stage but
# the last two ends in a 2×2 max pool. Total stride 64: 448×448 -> 7×7.
DARKNET_STAGES = (
    (((7, 64, 2),), True),
    (((3, 192, 1),), True),
    (((1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1)), True),
    (((1, 256, 1), (3, 512, 1)) * 4 + ((1, 512, 1), (3, 1024, 1)), True),
    (((1, 512, 1), (3, 1024, 1)) * 2 + ((3, 1024, 1), (3, 1024, 2)), False),
    (((3, 1024, 1), (3, 1024, 1)), False),
)
# A small-input configuration for 64–128 px images on a CPU, in the spirit of the paper's
# Fast YOLO (9 convolutions instead of 24, fewer filters): four pooled stages, total stride
# 16, so a 64×64 scene keeps a 4×4 feature map for the fully connected head to localize from.
SMALL_STAGES = (
    (((3, 32, 1),), True),
    (((3, 64, 1),), True),
    (((3, 128, 1), (1, 64, 1), (3, 128, 1)), True),
    (((3, 256, 1), (1, 128, 1), (3, 256, 1)), True),
)
STAGE_TABLES = {"darknet24": DARKNET_STAGES, "small": SMALL_STAGES}


def total_stride(stages) -> int:
    """Product of every convolution stride and every 2×2 pool of a stage table."""
    stride = 1
    for convs, pooled in stages:
        for _, _, s in convs:
            stride *= s
        stride *= 2 if pooled else 1
    return stride


@register(
    "yolo_v1", family="yolo", paper=PAPER, kind="detection", test_input_shape=(64, 64, 3),
    first_conv="conv1_1",
    input_sizes="fixed H, W multiples of 64 (448 in the paper); of 16 with stages='small'",
    test_kwargs={"width_multiplier": 0.03125, "fc_units": 32, "grid_size": 2},
)  # fmt: skip
def YOLOv1(
    input_shape=(448, 448, 3), num_classes=20, include_top=True, pooling=None,
    classifier_activation="softmax", name="yolo_v1", grid_size=7, boxes_per_cell=2,
    width_multiplier=1.0, fc_units=4096, dropout=0.5, batch_norm=False, stem_initializer=None,
    stages="darknet24", head="dense",
):  # fmt: skip
    """Builds YOLO v1.

    Args:
        input_shape: (H, W, C), fixed, H and W multiples of 64.
        num_classes: C.
        include_top: the detection head, output (S, S, B·5 + C); else the conv features.
        pooling: with include_top=False, None / "avg" / "max".
        classifier_activation: applied per cell to the C class scores ("softmax"; None is the
            paper's linear output).
        name: model name.
        grid_size: S (7).
        boxes_per_cell: B (2).
        width_multiplier: scales every convolution.
        fc_units: the hidden fully connected layer (4096).
        dropout: after it (0.5).
        batch_norm: BN after every convolution (YOLO v2's addition; off in v1).
        stem_initializer: first-convolution initializer spec (:func:`models.initializers.get`).
        stages: a key of ``STAGE_TABLES``: "darknet24" (the paper's 24 convolutions, stride
            64) or "small" (9 convolutions, stride 16, for 64–128 px inputs on a CPU).
        head: "dense" (the paper's fully connected layers, ``fc_units`` hidden) or "conv"
            (YOLO v2's fully convolutional head, ``fc_units`` filters; needs input size /
            total stride = grid_size, e.g. 64 px, stages "small", grid_size 4).

    Returns:
        keras.Model.

    Raises:
        ValueError: an unknown ``head`` or ``stages``; ``input_shape`` not a fixed (H, W, C) with H
            and W multiples of the total stride; ``grid_size``, ``boxes_per_cell`` or ``fc_units`` <
            1; ``head='conv'`` with a grid that is not the feature map's.
    """
    if head not in ("dense", "conv"):
        raise ValueError(f"Unknown head={head!r}; expected 'dense' or 'conv'")
    if stages not in STAGE_TABLES:
        raise ValueError(f"Unknown stages={stages!r}; expected one of {sorted(STAGE_TABLES)}")
    total = total_stride(STAGE_TABLES[stages])
    check_args(input_shape, num_classes, include_top, pooling, min_size=total, name=name)
    if len(input_shape) != 3 or None in input_shape[:2] or any(d % total for d in input_shape[:2]):
        raise ValueError(
            f"{name} needs a fixed (H, W, C) with H and W multiples of {total} (its total "
            f"stride); got input_shape={input_shape!r}"
        )
    for knob, value in (("grid_size", grid_size), ("boxes_per_cell", boxes_per_cell)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{knob}={value!r} must be a positive int")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for s, (convs, pooled) in enumerate(STAGE_TABLES[stages], start=1):
        for c, (kernel, filters, stride) in enumerate(convs, start=1):
            first = (s, c) == (1, 1)
            x = layers.Conv2D(
                scaled(filters, width_multiplier), kernel, strides=stride, padding="same",
                use_bias=not batch_norm, name=f"conv{s}_{c}",
                kernel_initializer=stem_kernel_initializer(stem_initializer if first else None),
            )(x)  # fmt: skip
            if batch_norm:
                x = layers.BatchNormalization(name=f"conv{s}_{c}_bn")(x)
            x = layers.LeakyReLU(0.1, name=f"conv{s}_{c}_leaky")(x)
        if pooled:
            x = layers.MaxPooling2D(2, name=f"pool{s}")(x)
    if not include_top:
        return keras.Model(inputs, pooled_features(x, pooling), name=name)
    if head == "conv" and tuple(d // total for d in input_shape[:2]) != (grid_size,) * 2:
        raise ValueError(
            f"head='conv' predicts one cell per feature-map position: input_shape="
            f"{input_shape!r} / stride {total} must equal grid_size={grid_size}"
        )
    head_fn = _conv_head if head == "conv" else _dense_head
    boxes, classes = head_fn(x, grid_size, boxes_per_cell, num_classes, fc_units, dropout)
    classes = layers.Activation(classifier_activation, name="class_probs")(classes)
    outputs = layers.Concatenate(dtype="float32", name="predictions")([boxes, classes])
    return keras.Model(inputs, outputs, name=name)


def _dense_head(x, S, B, C, units, dropout):
    """The paper's head: flatten, a hidden fully connected layer, then S·S·(B·5 + C)."""
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(units, name="fc1")(x)
    x = layers.LeakyReLU(0.1, name="fc1_leaky")(x)
    x = layers.Dropout(dropout, name="fc1_dropout")(x)
    # The paper's single linear layer, split in two so the class scores can get their own
    # per-cell activation.
    boxes = layers.Reshape((S, S, B * 5), name="boxes")(
        layers.Dense(S * S * B * 5, name="fc_boxes")(x)
    )
    classes = layers.Reshape((S, S, C), name="class_scores")(
        layers.Dense(S * S * C, name="fc_classes")(x)
    )
    return boxes, classes


def _conv_head(x, S, B, C, units, dropout):
    """A convolutional head (as YOLO v2 made it): each S×S feature position is one cell.

    A 3×3 convolution of ``units`` filters, then 1×1 convolutions to the B·5 box values and
    the C class scores of each cell; same output layout as the dense head.
    """
    x = layers.Conv2D(units, 3, padding="same", name="head_conv")(x)
    x = layers.LeakyReLU(0.1, name="head_leaky")(x)
    x = layers.SpatialDropout2D(dropout, name="head_dropout")(x)
    boxes = layers.Conv2D(B * 5, 1, name="boxes")(x)
    classes = layers.Conv2D(C, 1, name="class_scores")(x)
    return boxes, classes


def box_iou(a, b):
    """IoU of (…, 4) centre-format boxes (cx, cy, w, h), broadcasting; keras.ops."""
    a_min, a_max = a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2
    b_min, b_max = b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2
    overlap = ops.maximum(ops.minimum(a_max, b_max) - ops.maximum(a_min, b_min), 0.0)
    inter = overlap[..., 0] * overlap[..., 1]
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / ops.maximum(union, 1e-9)


@keras.saving.register_keras_serializable(package="convflow")
class YOLOv1Loss(keras.losses.Loss):
    """The sum-squared YOLO v1 loss (paper eq. 3), per image.

    λ_coord Σ 1ᵒᵇʲᵢⱼ [(x−x̂)² + (y−ŷ)² + (√w−√ŵ)² + (√h−√ĥ)²]
    + Σ 1ᵒᵇʲᵢⱼ (C−Ĉ)² + λ_noobj Σ 1ⁿᵒᵒᵇʲᵢⱼ (0−Ĉ)² + Σ 1ᵒᵇʲᵢ Σ_c (p(c)−p̂(c))²

    Box j of cell i is "responsible" (1ᵒᵇʲᵢⱼ) when the cell holds an object and j has the
    highest IoU with it among the cell's B boxes (the first on ties); every other box,
    including the non-responsible ones in object cells, is 1ⁿᵒᵒᵇʲ.

    Args:
        boxes_per_cell: B.
        lambda_coord: 5 in the paper.
        lambda_noobj: 0.5 in the paper.
        rescore: confidence target is the IoU (paper); False uses 1.
        class_loss: "sse", the paper's squared error on the class probabilities, or
            "crossentropy" (YOLO v3's choice): the squared error's gradient through a softmax
            vanishes for confidently wrong cells, which without the paper's ImageNet
            pre-training leaves a from-scratch model guessing classes for many epochs.
        from_logits: the C class outputs are logits (softmax applied here), as when the
            model is built with ``classifier_activation=None``.
    """

    def __init__(
        self, boxes_per_cell=2, lambda_coord=5.0, lambda_noobj=0.5, rescore=True,
        class_loss="sse", from_logits=False, name="yolo_v1_loss",
        reduction="sum_over_batch_size", dtype=None,
    ):  # fmt: skip
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if class_loss not in ("sse", "crossentropy"):
            raise ValueError(f"Unknown class_loss={class_loss!r}; expected 'sse' or 'crossentropy'")
        self.boxes_per_cell = boxes_per_cell
        self.lambda_coord = float(lambda_coord)
        self.lambda_noobj = float(lambda_noobj)
        self.rescore = bool(rescore)
        self.class_loss = class_loss
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        B = self.boxes_per_cell
        S = ops.shape(y_pred)[1]
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        pred = ops.reshape(y_pred[..., : 5 * B], (-1, S, S, B, 5))
        p_xy, p_sqrt_wh, p_conf = pred[..., 0:2], pred[..., 2:4], pred[..., 4]
        t_xy, t_wh = y_true[..., None, 0:2], y_true[..., None, 2:4]  # (N, S, S, 1, 2)
        obj = y_true[..., 4]  # (N, S, S)
        # IoU in image units; the cell offset is the same for truth and prediction.
        grid = ops.cast(S, y_pred.dtype)
        iou = box_iou(
            ops.concatenate([p_xy / grid, ops.square(p_sqrt_wh)], axis=-1),
            ops.concatenate([t_xy / grid, t_wh], axis=-1),
        )  # (N, S, S, B)
        responsible = ops.one_hot(ops.argmax(iou, axis=-1), B, dtype=y_pred.dtype) * obj[..., None]
        coord = ops.sum(ops.square(p_xy - t_xy), -1) + ops.sum(
            ops.square(p_sqrt_wh - ops.sqrt(t_wh)), -1
        )
        target_conf = ops.stop_gradient(iou) if self.rescore else ops.ones_like(iou)
        per_box = (
            self.lambda_coord * responsible * coord
            + responsible * ops.square(p_conf - target_conf)
            + self.lambda_noobj * (1.0 - responsible) * ops.square(p_conf)
        )
        probs, onehot = y_pred[..., 5 * B :], y_true[..., 5:]
        if self.from_logits:  # a network built with classifier_activation=None
            probs = ops.softmax(probs, axis=-1)
        if self.class_loss == "crossentropy":
            class_error = -ops.sum(onehot * ops.log(ops.clip(probs, 1e-7, 1.0)), -1)
        else:
            class_error = ops.sum(ops.square(probs - onehot), -1)
        per_cell = obj * class_error
        return ops.sum(per_box, axis=(1, 2, 3)) + ops.sum(per_cell, axis=(1, 2))

    def get_config(self):
        return {
            **super().get_config(),
            "boxes_per_cell": self.boxes_per_cell,
            "lambda_coord": self.lambda_coord,
            "lambda_noobj": self.lambda_noobj,
            "rescore": self.rescore,
            "class_loss": self.class_loss,
            "from_logits": self.from_logits,
        }


def encode_targets(boxes, classes, grid_size, num_classes):
    """One image's boxes -> (S, S, 5 + C) targets.

    Args:
        boxes: (n, 4) corner boxes (x1, y1, x2, y2) as fractions of the image.
        classes: (n,) int class ids.
        grid_size: S.
        num_classes: C.

    Returns:
        float32 array; a later box whose centre falls in an occupied cell replaces it.
    """
    target = np.zeros((grid_size, grid_size, 5 + num_classes), dtype="float32")
    for (x1, y1, x2, y2), cls in zip(np.asarray(boxes, dtype="float64"), classes, strict=True):
        cx, cy = (x1 + x2) / 2 * grid_size, (y1 + y2) / 2 * grid_size
        col, row = min(int(cx), grid_size - 1), min(int(cy), grid_size - 1)
        target[row, col, :5] = (cx - col, cy - row, x2 - x1, y2 - y1, 1.0)
        target[row, col, 5:] = 0.0
        target[row, col, 5 + int(cls)] = 1.0
    return target


def non_max_suppression(boxes, scores, iou_threshold=0.5, max_outputs=None):
    """Greedy NMS: keep the best box, drop boxes overlapping it by IoU > threshold, repeat.

    Args:
        boxes: (n, 4) corner boxes (x1, y1, x2, y2).
        scores: (n,).
        iou_threshold: boxes with IoU strictly above it are suppressed.
        max_outputs: stop after this many.

    Returns:
        int array of kept indices, best first.
    """
    boxes, scores = np.asarray(boxes, dtype="float64"), np.asarray(scores, dtype="float64")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and (max_outputs is None or len(keep) < max_outputs):
        best, rest = order[0], order[1:]
        keep.append(best)
        lo = np.maximum(boxes[best, :2], boxes[rest, :2])
        hi = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype="int64")


def decode_predictions(y_pred, boxes_per_cell=2, score_threshold=0.2, iou_threshold=0.5,
                       max_boxes=100, multi_label=False):  # fmt: skip
    """YOLO v1 output -> detections per image (numpy).

    A box's score for class c is conf · Pr(c | object) (the paper's class-specific
    confidence). Each box takes its best class, or with ``multi_label`` every class whose
    score reaches ``score_threshold`` (the paper scores every class of every box at test
    time; a box whose class is uncertain then counts for each candidate, as COCO evaluation
    expects). Pairs under ``score_threshold`` are dropped and NMS runs per class.

    Args:
        y_pred: (N, S, S, B·5 + C) model output.
        boxes_per_cell: B.
        score_threshold: minimum class-specific confidence.
        iou_threshold: NMS threshold.
        max_boxes: per image, after NMS.
        multi_label: one detection per (box, class) pair above the threshold.

    Returns:
        A list of N dicts with ``boxes`` (k, 4) corner boxes clipped to [0, 1] (image
        fractions), ``scores`` (k,) and ``classes`` (k,), best first.
    """
    y_pred = np.asarray(y_pred, dtype="float64")
    n, S = y_pred.shape[:2]
    B = boxes_per_cell
    pred = y_pred[..., : 5 * B].reshape(n, S, S, B, 5)
    probs = y_pred[..., 5 * B :][:, :, :, None, :]  # (N, S, S, 1, C)
    rows, cols = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
    cx = (cols[None, :, :, None] + pred[..., 0]) / S
    cy = (rows[None, :, :, None] + pred[..., 1]) / S
    w, h = np.square(pred[..., 2]), np.square(pred[..., 3])
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).clip(0, 1)
    class_scores = pred[..., 4:5] * probs  # (N, S, S, B, C)
    results = []
    for i in range(n):
        all_boxes = corners[i].reshape(-1, 4)
        scores_all = class_scores[i].reshape(len(all_boxes), -1)
        if multi_label:
            box_index, classes = np.nonzero(scores_all >= score_threshold)
            scores = scores_all[box_index, classes]
        else:
            box_index = np.arange(len(all_boxes))
            classes, scores = scores_all.argmax(axis=1), scores_all.max(axis=1)
            keep = scores >= score_threshold
            box_index, classes, scores = box_index[keep], classes[keep], scores[keep]
        boxes = all_boxes[box_index]
        kept = []
        for c in np.unique(classes):
            members = np.flatnonzero(classes == c)
            kept.append(
                members[non_max_suppression(boxes[members], scores[members], iou_threshold)]
            )
        idx = np.concatenate(kept) if kept else np.zeros(0, dtype="int64")
        idx = idx[np.argsort(-scores[idx], kind="stable")][:max_boxes]
        results.append({"boxes": boxes[idx], "scores": scores[idx], "classes": classes[idx]})
    return results
