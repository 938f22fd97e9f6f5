"""Evaluation figures: confusion matrix and a grid of misclassified examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convflow.components.plotting import pyplot


def confusion_matrix(cm: np.ndarray, class_names, path: Path) -> Path:
    """Row-normalized colours (recall per class) with the raw counts written in each cell."""
    plt = pyplot()
    n = len(class_names)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            color = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def misclassified(images, labels, probs, class_names, path: Path, limit: int = 25) -> Path:
    """The ``limit`` most confident mistakes: image, true class, predicted class and p."""
    plt = pyplot()
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:limit]
    cols = 5
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.0, rows * 2.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        image = np.asarray(images[i])
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        p = probs[i, predicted[i]]
        ax.set_title(
            f"true {class_names[labels[i]]}\npred {class_names[predicted[i]]} {p:.2f}", fontsize=7
        )
    if not len(wrong):
        axes.flat[0].set_title("no misclassified examples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
