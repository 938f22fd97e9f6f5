"""Benchmark: the Beam preprocess job vs vectorized numpy, on full Fashion-MNIST (70k images).

Both run the same transforms (scale, square crop, resize to 28, then GCN or LCN) in one
process run, side by side:

- Beam: the ``preprocess`` component end to end, reading the ingest TFRecords and writing
  float32 TFRecords plus statistics (DirectRunner in the configured running mode);
- numpy: the same maths on the uint8 arrays already in memory (no I/O).

Prints images/s for both (best of ``--repeat`` runs each, because the machine is shared) and
the ratio Beam/numpy (target ≥ 0.5), and the largest difference between the two outputs, to
show they compute the same thing. "job only" leaves out the component's driver work (sample
grid, renaming shards).

Usage: ``python bench/preprocess.py [--modes in_memory,multi_processing] [--limit N]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def load_idx(images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads one IDX image/label file pair (gzip) as (N, 28, 28, 1) uint8 and int64 labels."""
    with gzip.open(DATA / images) as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w, 1)
    with gzip.open(DATA / labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


# --- the vectorized numpy implementation -------------------------------------------------


def np_crop_resize(x: np.ndarray, size: int) -> np.ndarray:
    """Scale to [0,1], centre square crop, bilinear resize (pixel centres, edge clamp)."""
    x = x.astype(np.float32) / 255.0
    h, w = x.shape[1:3]
    side = min(h, w)
    x = x[:, (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    if side == size:
        return x
    pos = np.clip((np.arange(size) + 0.5) * side / size - 0.5, 0, side - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, side - 1)
    f = (pos - lo).astype(np.float32)
    x = x[:, lo] * (1 - f)[None, :, None, None] + x[:, hi] * f[None, :, None, None]
    return x[:, :, lo] * (1 - f)[None, None, :, None] + x[:, :, hi] * f[None, None, :, None]


def np_gcn(x: np.ndarray, s=1.0, lam=0.0, eps=1e-8) -> np.ndarray:
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = np.sqrt(lam + np.square(centred).mean(axis=(1, 2, 3), keepdims=True))
    return s * centred / np.maximum(eps, contrast)


def _blur(x: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    r = len(g) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    p = np.pad(x, pad)
    n = x.shape[axis]
    return sum(g[i] * np.take(p, range(i, i + n), axis=axis) for i in range(len(g)))


def np_lcn(x: np.ndarray, kernel_size=9, sigma=2.0, floor=1e-4) -> np.ndarray:
    r = np.arange(kernel_size) - kernel_size // 2
    g = np.exp(-0.5 * (r / sigma) ** 2)
    g = (g / g.sum()).astype(np.float32)

    def local_mean(t):  # renormalized window at the borders, like the component
        ones = np.ones((1, *t.shape[1:]), np.float32)
        weight = _blur(_blur(ones, g, 1), g, 2)
        return _blur(_blur(t, g, 1), g, 2) / weight

    centred = x - local_mean(x)
    sigma_local = np.sqrt(np.maximum(local_mean(np.square(centred)), 0))
    c = sigma_local.mean(axis=(1, 2), keepdims=True)
    return centred / np.maximum(np.maximum(sigma_local, c), floor)


# --- the Beam side ------------------------------------------------------------------------


def write_ingest(root: Path, x: np.ndarray, y: np.ndarray, n_train: int) -> Path:
    """An ingest-style uint8 Examples artifact: train/test shards of 10k records."""
    from convflow.components.examples import write_split

    src = root / "ingest"
    src.mkdir()
    splits = {
        "train": write_split(src, "train", x[:n_train], y[:n_train]),
        "test": write_split(src, "test", x[n_train:], y[n_train:]),
    }
    meta = {"splits": splits, "dtype": "uint8", "image_shape": [28, 28, 1], "num_classes": 10}
    meta["class_names"] = [str(i) for i in range(10)]
    (src / "artifact.json").write_text(
        json.dumps(
            {"type": "Examples", "fingerprint": "bench", "producer": "bench", "properties": meta}
        )
    )
    return src


def run_beam(root: Path, src: Path, steps: list[str], mode: str):
    """Runs the component; returns (seconds end to end, Beam-job seconds, output artifact)."""
    from convflow.components.base import Artifact, run_by_hand
    from convflow.components.preprocess import Params, preprocess

    metrics: dict = {}
    start = time.perf_counter()
    outputs = run_by_hand(
        preprocess, tempfile.mkdtemp(dir=root), {"examples": Artifact.load(src)},
        Params(steps=steps, direct_running_mode=mode), metrics=metrics,
    )  # fmt: skip
    return time.perf_counter() - start, metrics["seconds"], outputs["examples"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="in_memory", help="DirectRunner modes, comma-separated")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best one counts")
    args = ap.parse_args()

    from convflow.components.examples import read_split

    x_tr, y_tr = load_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    x_te, y_te = load_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    x, y = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
    n_train = len(x_tr)
    if args.limit:
        x, y, n_train = x[: args.limit], y[: args.limit], min(n_train, args.limit * 6 // 7)
    n = len(x)
    root = Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    try:
        t = time.perf_counter()
        src = write_ingest(root, x, y, n_train)
        print(
            f"{n} images, {os.cpu_count()} cores; ingest shards written in "
            f"{time.perf_counter() - t:.1f}s (not timed below)"
        )
        print(
            f"{'transform':<6} {'mode':<17} {'beam img/s':>11} {'(job only)':>11} "
            f"{'numpy img/s':>12} {'ratio':>6} {'max|diff|':>10}"
        )
        for name, fn in (("gcn", np_gcn), ("lcn", np_lcn)):
            np_seconds = []
            for _ in range(args.repeat):  # best of N: the machine is shared, load comes and goes
                start = time.perf_counter()
                ref = fn(np_crop_resize(x, 28))
                np_seconds.append(time.perf_counter() - start)
            np_rate = n / min(np_seconds)
            for mode in args.modes.split(","):
                runs = [
                    run_beam(root, src, ["crop", "resize", name], mode) for _ in range(args.repeat)
                ]
                total, job, out = min(runs, key=lambda r: r[0])
                got = np.concatenate([read_split(out, "train")[0], read_split(out, "test")[0]])
                diff = float(np.abs(got - ref).max())
                rate = n / total
                print(
                    f"{name:<6} {mode:<17} {rate:>11.0f} {n / job:>11.0f} {np_rate:>12.0f} "
                    f"{rate / np_rate:>6.2f} {diff:>10.1e}",
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
