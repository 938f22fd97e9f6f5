"""Training figures: loss/accuracy curves and the learned first-layer kernels."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from convflow.components.plotting import pyplot


def training_curves(history: dict[str, list[float]], path: Path) -> Path:
    """One panel per metric (loss, accuracy, ...), train and validation overlaid."""
    plt = pyplot()
    names = [k for k in history if not k.startswith("val_") and k not in ("epoch_seconds",)]
    names = [k for k in names if k != "learning_rate"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def first_layer_kernels(model, path: Path, layer_name: str | None = None) -> Path | None:
    """The first convolution's kernels as a grid of small images (input channels averaged).

    Zeiler & Fergus 2014 read first-layer filters this way: trained ones look like oriented
    edge and blob detectors; noise means training went wrong. The layer is the one the zoo's
    ModelSpec names (``first_conv``, passed as ``layer_name``); None when there is none.
    """
    from convflow.models.initializers import first_conv

    if layer_name is None:
        return None
    try:
        conv = first_conv(model, layer_name)
    except ValueError:
        return None
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), dtype=np.float32)
    if kernel.ndim != 4:
        # lenet5 with conv="tiled" or "local" names the same layer, but a tiled or locally
        # connected kernel is not one (kh, kw, in, out) set to draw.
        return None
    kernel = kernel.mean(axis=2)  # (kh, kw, filters)
    n = kernel.shape[-1]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            k = kernel[..., i]
            ax.imshow((k - k.min()) / (np.ptp(k) + 1e-8), cmap="gray", interpolation="nearest")
    fig.suptitle(f"{conv.name}: {n} kernels {kernel.shape[0]}×{kernel.shape[1]}")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def model_summary(model, path: Path) -> Path:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line), line_length=110)
    path.write_text("\n".join(lines) + "\n")
    return path
