"""The context module's receptive field, measured: which input pixels move one output pixel.

The lecture's table (Yu & Koltun 2016, Table 1) gives the receptive field of the context
module's layers 1–8 (3×3 convolutions with dilations 1, 1, 2, 4, 8, 16, 1, then a 1×1):
3, 5, 9, 17, 33, 65, 67, 67. This script builds ``models.dilated.context_module`` on an
input of ``--size`` × ``--size`` pixels, cuts it after each layer, and takes the gradient of
the centre output pixel (summed over channels) with respect to the input. The receptive
field is the set of input pixels where that gradient is non-zero: its height × width, and
whether it is a filled square (dilations that skip pixels would leave holes).

The weights are set to positive values (uniform in [0.1, 1]) and the input is positive, so
every ReLU is active and a pixel's gradient is zero exactly when no path connects it to the
output: the measurement shows the architecture's receptive field, not one set of weights'.
(With the module's own identity initialization the gradient reaches only the centre pixel:
an untrained module passes scores through unchanged, by design.)

    python bench/receptive_field.py [--size 67] [--channels 2] [--plot PATH]

Runs on the TensorFlow backend (GradientTape); seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf
from convflow.models.dilated import CONTEXT_DILATIONS, build_context_module

# The lecture's table: receptive field (pixels per side) after layers 1..8.
TABLE = (3, 5, 9, 17, 33, 65, 67, 67)


def positive_weights(model: keras.Model, seed: int = 0) -> None:
    """Sets every kernel to uniform [0.1, 1] and every bias to 0.1 (all ReLUs active)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights(
                [rng.uniform(0.1, 1.0, kernel.shape).astype("float32"), np.full_like(bias, 0.1)]
            )


def gradient_mask(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """(H, W) bool: input pixels whose gradient on the centre output pixel is non-zero.

    Args:
        model: (B, H, W, C) -> (B, h, w, C') with h, w == H, W (a "same"-padded stack).
        image: (H, W, C) input.
    """
    x = tf.constant(image[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
        h, w = y.shape[1] // 2, y.shape[2] // 2
        centre = tf.reduce_sum(y[0, h, w, :])
    grad = tape.gradient(centre, x)[0].numpy()  # (H, W, C)
    return np.any(grad != 0.0, axis=-1)


def extent(mask: np.ndarray) -> tuple[int, int, bool]:
    """(height, width, filled) of the non-zero region of ``mask``."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return 0, 0, False
    height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    return height, width, int(mask.sum()) == height * width


def measure(size: int = 67, channels: int = 2, variant: str = "basic", seed: int = 0) -> list:
    """Measures the receptive field after each of the context module's 8 layers.

    Args:
        size: input height and width (67 is the smallest that holds the whole field).
        channels: C, the class-score channels.
        variant: "basic" or "large".
        seed: weights and input.

    Returns:
        One dict per layer: ``layer``, ``dilation`` (1 for the 1×1 layer 8), ``height``,
        ``width``, ``filled``, ``table`` (the lecture's value) and the ``mask``.
    """
    model = build_context_module(channels, variant, input_shape=(size, size))
    positive_weights(model, seed)
    image = np.random.default_rng(seed).uniform(0.5, 1.0, (size, size, channels))
    rows = []
    for i, table in enumerate(TABLE, 1):
        cut = keras.Model(model.input, model.get_layer(f"context_{i}").output)
        mask = gradient_mask(cut, image.astype("float32"))
        height, width, filled = extent(mask)
        dilation = CONTEXT_DILATIONS[i - 1] if i <= len(CONTEXT_DILATIONS) else 1
        rows.append(
            {"layer": i, "dilation": dilation, "height": height, "width": width,
             "filled": filled, "table": table, "mask": mask}
        )  # fmt: skip
    return rows


def plot(rows: list, path: Path) -> Path:
    """The eight gradient masks, each titled measured vs table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(11, 6.6))
    for ax, r in zip(axes.ravel(), rows, strict=True):
        ax.imshow(
            r["mask"], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest"
        )  # all-True: black
        ok = "=" if r["height"] == r["width"] == r["table"] else "≠"
        ax.set_title(
            f"layer {r['layer']} (dilation {r['dilation']})\n"
            f"measured {r['height']}×{r['width']} {ok} table {r['table']}",
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    size = rows[0]["mask"].shape[0]
    fig.suptitle(f"Context module: input pixels with non-zero gradient on the centre output "
                 f"pixel ({size}×{size} input)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=67, help="input height and width (pixels)")
    ap.add_argument("--channels", type=int, default=2, help="C, score channels")
    ap.add_argument("--variant", default="basic", choices=("basic", "large"))
    ap.add_argument("--plot", type=Path, help="write the masks here")
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()
    if args.size < 1 or args.size % 2 == 0:
        raise SystemExit(f"error: --size {args.size}: expected an odd number >= 1 (a centre)")
    rows = measure(args.size, args.channels, args.variant)
    print(f"{'layer':>5}{'dilation':>10}{'measured':>12}{'filled':>8}{'table':>8}")
    for r in rows:
        got = f"{r['height']}×{r['width']}"
        print(f"{r['layer']:>5}{r['dilation']:>10}{got:>12}{r['filled']!s:>8}{r['table']:>8}")
    same = all(r["height"] == r["width"] == r["table"] for r in rows)
    print(f"measured == table: {same}")
    if args.json:
        table = [{k: v for k, v in r.items() if k != "mask"} for r in rows]
        args.json.write_text(json.dumps(table, indent=1))
    if args.plot:
        print(f"plot: {plot(rows, args.plot)}")


if __name__ == "__main__":
    main()
