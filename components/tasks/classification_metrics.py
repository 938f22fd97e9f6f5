"""Classification metrics from probabilities, in NumPy."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(true class, predicted class) counts."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, predicted), 1)
    return cm


def per_class(cm: np.ndarray, class_names) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class (0 where a denominator is 0)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i, name in enumerate(class_names)
    }


def summary(probs: np.ndarray, labels: np.ndarray, top_k: int) -> dict[str, float]:
    """Loss (cross-entropy), accuracy and top-k accuracy of (N, classes) probabilities."""
    eps = np.finfo(np.float32).tiny
    loss = -np.log(np.maximum(probs[np.arange(len(labels)), labels], eps)).mean()
    k = min(top_k, probs.shape[1])
    topk = np.argsort(-probs, axis=1)[:, :k]
    return {
        "loss": float(loss),
        "accuracy": float((probs.argmax(axis=1) == labels).mean()),
        f"top{top_k}_accuracy": float((topk == labels[:, None]).any(axis=1).mean()),
    }


def macro(per_class_metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    rows = list(per_class_metrics.values())
    return {
        f"macro_{m}": float(np.mean([r[m] for r in rows])) for m in ("precision", "recall", "f1")
    }
