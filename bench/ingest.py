"""Ingest throughput on the full Fashion-MNIST next to a plain numpy read of the same files.

    python bench/ingest.py [--repeat 3]

Both are measured in this run (the machine is shared, absolute times move): the ingest
component (IDX parse with checks, stratified split, TFRecord shards) and `gzip + np.frombuffer`
of the same four IDX files, which is the floor any reader pays.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np
from convflow.components.base import EXAMPLES, Context, OutputArtifact
from convflow.components.ingest import Params, ingest
from convflow.components.ingest.spec import IdxFiles


def numpy_read(files: IdxFiles) -> int:
    n = 0
    for images, labels in (
        (files.train_images, files.train_labels),
        (files.test_images, files.test_labels),
    ):
        with gzip.open(images) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
        with gzip.open(labels) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        assert len(x) == len(y)
        n += len(x)
    return n


def run_ingest(params: Params) -> int:
    with tempfile.TemporaryDirectory() as d:
        out, work = Path(d, "out"), Path(d, "work")
        out.mkdir()
        work.mkdir()
        ctx = Context(
            params, {}, {"examples": OutputArtifact(str(out), EXAMPLES)}, work, show_progress=False
        )
        ingest(ctx)
        return sum(s["count"] for s in ctx.outputs["examples"].properties["splits"].values())


def best_of(fn, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return min(times), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    params = Params()
    run_ingest(Params(max_examples=100))  # warm-up: TensorFlow import and first-call costs
    t_np, n_np = best_of(lambda: numpy_read(params.idx), args.repeat)
    t_in, n_in = best_of(lambda: run_ingest(params), args.repeat)
    print(f"{'reader':<28}{'images':>8}{'seconds':>10}{'images/s':>12}")
    print(f"{'numpy IDX read (baseline)':<28}{n_np:>8}{t_np:>10.2f}{n_np / t_np:>12,.0f}")
    print(f"{'ingest component':<28}{n_in:>8}{t_in:>10.2f}{n_in / t_in:>12,.0f}")
    print(
        f"ingest / numpy throughput: {(n_in / t_in) / (n_np / t_np):.3f}x (best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
