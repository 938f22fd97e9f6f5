"""matplotlib for figures written to files (train curves, evaluation plots, samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: files only, no display on a worker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(cm: np.ndarray, class_names, path: Path, percent: bool = False) -> Path:
    """A confusion matrix (rows: true class, columns: predicted), coloured by recall.

    Colours are row-normalized (each class's recall); each cell shows the raw count, or with
    ``percent`` its share of the row in % (segmentation, whose pixel counts run to millions;
    empty cells are left blank then).

    Args:
        cm: (C, C) counts.
        class_names: C names, in class-index order.
        path: the PNG written.
    """
    plt = pyplot()
    n = len(class_names)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if percent and not cm[i, j]:
                continue
            text = f"{100 * rates[i, j]:.0f}" if percent else str(cm[i, j])
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if percent:
        ax.set_title("% of each true class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
