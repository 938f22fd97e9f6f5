"""Semantic-segmentation metrics from one pixel confusion matrix, in NumPy.

All four scores of Long, Shelhamer & Darrell (2015, §5) come from the confusion matrix
``n[i, j]`` = pixels of true class ``i`` predicted as ``j``, with ``t_i = Σ_j n[i, j]``:

- pixel accuracy ``Σ_i n_ii / Σ_i t_i``;
- per-class IoU ``n_ii / (t_i + Σ_j n_ji - n_ii)``;
- mean IoU: the mean of per-class IoU over the classes present in the truth or the
  prediction (a class absent from both has no IoU, not 0 or 1);
- frequency-weighted IoU ``Σ_i t_i IoU_i / Σ_i t_i``.

Pixels whose true value is the ignore index (255, Pascal VOC's "void") are left out of the
matrix, so they count in no score.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Pixel counts ``(true class, predicted class)``, ignore pixels left out.

    Args:
        y_true: integer class map, any shape (e.g. ``(N, H, W)``).
        y_pred: integer class map of the same shape.
        num_classes: K.
        ignore_index: true value whose pixels are not counted.

    Returns:
        ``(K, K) int64``; rows true, columns predicted.

    Raises:
        ValueError: shapes differ, or a value outside ``[0, K)`` that is not ``ignore_index``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"true shape {y_true.shape} != predicted shape {y_pred.shape}")
    keep = y_true != ignore_index
    t, p = y_true[keep].astype(np.int64), y_pred[keep].astype(np.int64)
    for name, values in (("true", t), ("predicted", p)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)][0]
            raise ValueError(f"{name} class {bad} outside [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for a class in neither truth nor prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    return np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)


def scores(cm: np.ndarray) -> dict[str, float]:
    """Pixel accuracy, mean accuracy, mean IoU and frequency-weighted IoU of a matrix.

    Returns:
        ``{"pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"}``; NaN for an empty
        matrix (no counted pixel).
    """
    cm = np.asarray(cm, np.float64)
    total = cm.sum()
    if total == 0:
        return dict.fromkeys(("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"), np.nan)
    tp, support = np.diag(cm), cm.sum(axis=1)
    iou = per_class_iou(cm)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    freq = support / total
    return {
        "pixel_accuracy": float(tp.sum() / total),
        "mean_accuracy": float(np.nanmean(recall)),
        "mean_iou": float(np.nanmean(iou)),
        "fw_iou": float(np.nansum(freq * iou)),
    }


def per_class(cm: np.ndarray, class_names) -> dict[str, dict[str, float]]:
    """IoU, pixel recall and pixel support per class (no IoU when the class never occurs)."""
    iou = per_class_iou(cm)
    support = cm.sum(axis=1)
    recall = np.divide(
        np.diag(cm), support, out=np.zeros(len(support), np.float64), where=support > 0
    )
    table = {}
    for i, name in enumerate(class_names):
        row = {} if np.isnan(iou[i]) else {"iou": float(iou[i])}
        table[name] = {**row, "recall": float(recall[i]), "support": int(support[i])}
    return table
