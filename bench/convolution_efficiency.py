"""Figure 9.6: the two-element edge kernel as a convolution vs the equivalent matrix product.

The book's example: each output pixel of a 280 × 320 image minus its left neighbour, a
280 × 319 map of vertical edges. As a convolution the kernel has 2 entries and costs
319 × 280 × 3 = 267,960 floating-point operations (two multiplications and one addition per
output pixel). As a dense matrix it has (319 · 280) × (320 · 280) ≈ 8.0 billion entries and
the straightforward product costs two operations per entry, ≈ 16 billion: "convolution
roughly 60,000 times more efficient computationally". Stored sparsely, the matrix keeps
2 × 319 × 280 = 178,640 entries and costs about as much as the convolution.

This script counts those operations and times all three on one image in one run, against
the convolution measured in the same run (the machine may be shared):

- **convolution**: ``w0 * x[:, :-1] + w1 * x[:, 1:]`` in NumPy (best of ``--repeat``);
- **sparse**: the same matrix as SciPy CSR (178,640 non-zeros) times the flattened image;
- **dense**: the full matrix, never held at once (8.0e9 float32 entries = 32 GB): it is
  streamed as 280 row bands, one per output row (319 × 89,600 entries, 114 MB each). Each
  band is built with the timer stopped, then ``band @ x`` runs with it started; the dense
  time is the sum over all 280 bands, so every one of the 16 billion operations is done.

All three outputs are checked equal before anything is printed. ``--plot PATH`` writes the
operation counts and times as a bar chart (log scale); ``--json PATH`` the numbers.

    python bench/convolution_efficiency.py [--repeat 20] [--bands 280] [--plot PATH]

Source: Goodfellow, Bengio & Courville, *Deep Learning*, Figure 9.6.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import sparse

HEIGHT, WIDTH = 280, 320  # the book's image: 280 pixels tall, 320 wide
KERNEL = np.array([-1.0, 1.0], np.float32)  # output = right pixel - left pixel


def counts(height: int = HEIGHT, width: int = WIDTH) -> dict[str, int]:
    """Operation and storage counts of the three forms (the book's arithmetic).

    Returns:
        ``conv_flops`` (3 per output pixel), ``dense_flops`` (2 per matrix entry: a multiply
        and an add), ``sparse_flops`` (2 per stored entry), ``dense_entries``,
        ``sparse_entries`` and ``kernel_entries``.
    """
    outputs, inputs = height * (width - 1), height * width
    return {
        "conv_flops": 3 * outputs,
        "dense_flops": 2 * outputs * inputs,
        "sparse_flops": 2 * 2 * outputs,
        "dense_entries": outputs * inputs,
        "sparse_entries": 2 * outputs,
        "kernel_entries": KERNEL.size,
    }


def convolve(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W - 1): the two-element kernel, valid cross-correlation."""
    return KERNEL[0] * image[:, :-1] + KERNEL[1] * image[:, 1:]


def sparse_matrix(height: int, width: int) -> sparse.csr_matrix:
    """The convolution as a CSR matrix, (H·(W-1), H·W)."""
    rows = np.arange(height * (width - 1))
    r, c = np.divmod(rows, width - 1)
    left = r * width + c
    data = np.tile(KERNEL, rows.size)
    cols = np.stack([left, left + 1], 1).ravel()
    shape = (rows.size, height * width)
    return sparse.csr_matrix((data, (np.repeat(rows, 2), cols)), shape=shape)


def dense_band(row: int, height: int, width: int, out: np.ndarray) -> np.ndarray:
    """Rows of the dense matrix for output image row ``row``: (W-1, H·W), zeros elsewhere."""
    out.fill(0.0)
    j = np.arange(width - 1)
    out[j, row * width + j] = KERNEL[0]
    out[j, row * width + j + 1] = KERNEL[1]
    return out


def time_dense(image: np.ndarray, bands: int) -> tuple[float, np.ndarray]:
    """Seconds of ``band @ x`` summed over the first ``bands`` output rows, and those rows."""
    height, width = image.shape
    x = image.ravel()
    band = np.empty((width - 1, height * width), np.float32)
    rows, seconds = [], 0.0
    for r in range(bands):
        dense_band(r, height, width, band)
        t0 = time.perf_counter()
        rows.append(band @ x)
        seconds += time.perf_counter() - t0
    return seconds, np.stack(rows)


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(repeat: int = 20, bands: int = HEIGHT, seed: int = 0) -> dict:
    """Times the three forms on one random 280 × 320 image; checks they agree.

    Returns:
        The counts of :func:`counts`, ``seconds`` per form (dense: summed over ``bands``
        row bands and scaled to all 280 when ``bands`` < 280) and ``ratios`` against the
        convolution measured in the same run.

    Raises:
        AssertionError: the three outputs differ.
    """
    image = np.random.default_rng(seed).random((HEIGHT, WIDTH), dtype=np.float32)
    conv = convolve(image)
    csr = sparse_matrix(HEIGHT, WIDTH)
    x = image.ravel()
    np.testing.assert_allclose((csr @ x).reshape(conv.shape), conv, atol=1e-6)
    dense_seconds, dense_rows = time_dense(image, bands)
    np.testing.assert_allclose(dense_rows, conv[:bands], atol=1e-6)
    seconds = {
        "conv": best_of(lambda: convolve(image), repeat),
        "sparse": best_of(lambda: csr @ x, repeat),
        "dense": dense_seconds * HEIGHT / bands,
    }
    return {
        **counts(),
        "bands_timed": bands,
        "seconds": seconds,
        "ratios": {k: v / seconds["conv"] for k, v in seconds.items()},
        "load_average": os.getloadavg(),
    }


def plot(result: dict, path: Path) -> Path:
    """Bar chart: operations and seconds of the three forms, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["conv", "sparse", "dense"]
    flops = [result[f"{n}_flops"] for n in names]
    secs = [result["seconds"][n] for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, values, label in ((axes[0], flops, "floating-point operations"),
                              (axes[1], secs, "seconds (measured)")):  # fmt: skip
        ax.bar(names, values, color=["tab:green", "tab:blue", "tab:red"])
        ax.set_yscale("log")
        ax.set_ylabel(label)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom")
    fig.suptitle(
        f"Figure 9.6, 280×320 edge kernel: dense/conv = {result['ratios']['dense']:,.0f}× "
        f"time, {result['dense_flops'] / result['conv_flops']:,.0f}× operations"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="best of N for conv and sparse")
    ap.add_argument("--bands", type=int, default=HEIGHT, help="dense row bands to time (280)")
    ap.add_argument("--plot", type=Path, help="write the bar chart here")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    args = ap.parse_args()
    if not 1 <= args.bands <= HEIGHT:
        raise SystemExit(f"error: --bands {args.bands}: expected 1..{HEIGHT}")
    result = measure(args.repeat, args.bands)
    print(
        f"image {HEIGHT}×{WIDTH}, kernel {KERNEL.tolist()}; load average {result['load_average']}"
    )
    print(f"{'form':<8}{'entries':>16}{'flops':>18}{'seconds':>12}{'× conv':>12}")
    entries = {"conv": result["kernel_entries"], "sparse": result["sparse_entries"],
               "dense": result["dense_entries"]}  # fmt: skip
    for name in ("conv", "sparse", "dense"):
        print(
            f"{name:<8}{entries[name]:>16,}{result[f'{name}_flops']:>18,}"
            f"{result['seconds'][name]:>12.6f}{result['ratios'][name]:>12,.1f}"
        )
    flop_ratio = result["dense_flops"] / result["conv_flops"]
    print(f"dense/conv operations: {flop_ratio:,.0f} (the book: roughly 60,000)")
    if args.bands < HEIGHT:
        print(f"dense time: {args.bands} of {HEIGHT} bands timed, scaled to all {HEIGHT}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        print(f"plot: {plot(result, args.plot)}")


if __name__ == "__main__":
    main()
