"""Segmentation figures: image / true mask / predicted mask overlays, per-class IoU bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convflow.components.masks import overlay, palette
from convflow.components.plotting import pyplot as _pyplot


def _legend(fig, class_names, present) -> None:
    from matplotlib.patches import Patch

    colours = palette(256) / 255.0
    handles = [
        Patch(facecolor=colours[i], edgecolor="black", label=f"{i} {class_names[i]}")
        for i in sorted(present)
        if i < len(class_names)
    ]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=7)


def overlay_grid(images, true_masks, pred_masks, class_names, path: Path, limit: int = 8) -> Path:
    """One row per example: the image, the true mask over it, the predicted mask over it.

    Args:
        images: ``(N, H, W, C) uint8`` raw images (or a list of them).
        true_masks: ``(N, H, W)`` class indices (255 ignore), same H×W as each image.
        pred_masks: ``(N, H, W)`` predicted class indices.
        class_names: names by index, for the legend.
        path: the PNG to write.
        limit: at most this many rows (the first examples).

    Returns:
        ``path``.
    """
    plt = _pyplot()
    n = min(limit, len(images))
    fig, axes = plt.subplots(max(n, 1), 3, figsize=(6.6, 2.2 * max(n, 1) + 0.8), squeeze=False)
    present: set[int] = set()
    for row in range(n):
        image = np.asarray(images[row])
        truth, pred = np.asarray(true_masks[row]), np.asarray(pred_masks[row])
        present |= {int(v) for v in np.unique(truth) if v != 255} | set(np.unique(pred).tolist())
        gray = image[..., 0] if image.shape[-1] == 1 else image
        axes[row, 0].imshow(gray, cmap="gray", vmin=0, vmax=255)
        axes[row, 1].imshow(overlay(image, truth))
        axes[row, 2].imshow(overlay(image, pred))
        correct = (truth == pred)[truth != 255].mean() if (truth != 255).any() else np.nan
        axes[row, 2].set_xlabel(f"pixel acc {correct:.2f}", fontsize=7)
    for col, title in enumerate(("image", "true", "predicted")):
        axes[0, col].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    _legend(fig, class_names, present)
    legend_rows = -(-len(present) // 6)
    fig.tight_layout(rect=(0, 0.03 * legend_rows + 0.02, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def iou_bars(per_class_iou, class_names, path: Path) -> Path:
    """Horizontal bars of per-class IoU (classes that never occur are left blank)."""
    plt = _pyplot()
    iou = np.asarray(per_class_iou, np.float64)
    fig, ax = plt.subplots(figsize=(5.5, 0.8 + 0.3 * len(class_names)))
    colours = palette(len(class_names)) / 255.0
    ax.barh(range(len(iou)), np.nan_to_num(iou), color=colours, edgecolor="black")
    for i, v in enumerate(iou):
        x = 0.01 if np.isnan(v) else min(v, 0.88) + 0.01  # beside the bar: class 0 is black
        ax.text(x, i, "n/a" if np.isnan(v) else f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    valid = iou[~np.isnan(iou)]
    ax.set_title(f"mean IoU {valid.mean():.3f}" if len(valid) else "mean IoU n/a", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
