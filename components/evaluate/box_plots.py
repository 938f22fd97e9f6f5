"""Pictures of boxes: a grid of test images with true and predicted boxes, and one
annotated image (``convflow predict``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from convflow.components.boxes import BoxTargets, to_pixel_xyxy

TRUE_COLOUR, PRED_COLOUR, IGNORE_COLOUR = "#2ca02c", "#d62728", "#7f7f7f"


def _show(ax, image: np.ndarray) -> None:
    image = np.asarray(image)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else None)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_boxes(ax, xyxy, labels, colour: str, linestyle: str = "-", fontsize: float = 6) -> None:
    """Draws pixel ``[x1, y1, x2, y2]`` boxes with a text label at each top-left corner."""
    from matplotlib.patches import Rectangle

    for (x1, y1, x2, y2), label in zip(xyxy, labels, strict=True):
        # imshow puts pixel i's centre at i, so pixel edges sit at -0.5 offsets.
        ax.add_patch(
            Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                      linewidth=1.2, linestyle=linestyle)
        )  # fmt: skip
        if label:
            tag = {"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.85}
            ax.text(x1 - 0.5, y1 - 0.5, label, color="white", fontsize=fontsize, va="bottom",
                    bbox=tag)  # fmt: skip


def detection_grid(
    images: Sequence[np.ndarray],
    truths: Sequence[BoxTargets],
    detections: Sequence[dict],
    class_names: Sequence[str],
    path: str | Path,
    columns: int = 4,
) -> Path:
    """Saves a grid of images with true (green; grey dashed = ignore) and predicted (red,
    ``class score``) boxes.

    Args:
        images: (H, W, C) uint8 images.
        truths: their ground truth, stored convention.
        detections: per image ``{"boxes", "scores", "classes"}``, stored convention.
        class_names: index -> name.
        path: the PNG to write.
        columns: images per row.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(images))
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, truth, det in zip(axes.ravel(), images, truths, detections, strict=False):
        ax.axis("on")
        _show(ax, image)
        height, width = image.shape[:2]
        for ignore, colour, style in ((False, TRUE_COLOUR, "-"), (True, IGNORE_COLOUR, "--")):
            keep = truth.ignore == ignore
            draw_boxes(ax, to_pixel_xyxy(truth.boxes[keep], height, width),
                       [class_names[c] for c in truth.classes[keep]], colour, style)  # fmt: skip
        labels = [
            f"{class_names[c]} {s:.2f}" for c, s in zip(det["classes"], det["scores"], strict=True)
        ]
        draw_boxes(ax, to_pixel_xyxy(det["boxes"], height, width), labels, PRED_COLOUR)
    fig.suptitle("green: ground truth, red: predictions (class score), grey dashed: ignored")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def annotated_image(image: np.ndarray, xyxy, labels: Sequence[str], path: str | Path) -> Path:
    """Saves one image with pixel ``[x1, y1, x2, y2]`` boxes and labels drawn on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = image.shape[:2]
    scale = max(1.0, 384 / max(height, width))  # tiny scenes are enlarged to stay readable
    fig = plt.figure(figsize=(width * scale / 100, height * scale / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    _show(ax, image)
    draw_boxes(ax, np.asarray(xyxy).reshape(-1, 4), list(labels), PRED_COLOUR, fontsize=8)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
