"""Evaluation figures of classification: a grid of misclassified examples (the confusion
matrix is components/plotting.confusion_matrix, shared with segmentation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convflow.components.plotting import pyplot


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
