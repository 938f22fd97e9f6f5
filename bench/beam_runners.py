"""Benchmark: the one preprocess Beam job on three runners, on full Fashion-MNIST (70k images).

In one process run, on the same ingest shards (7 × 10k records), the ``preprocess``
component end to end (default steps: scale, crop, resize, GCN) on:

- DirectRunner, ``in_memory`` (convflow's default: Beam's in-process runner);
- DirectRunner, ``multi_processing`` with 2 worker processes;
- DaskRunner on a local dask.distributed cluster: a ``dask scheduler`` and 2 ``dask worker``
  processes (1 thread each) on loopback, started here (their start-up is not timed; their
  first job pays for importing TensorFlow in each worker, the second does not).

Prints images/s, the ratio to ``in_memory``, and whether each output artifact has the same
fingerprint as ``in_memory``'s (it must). One run each: the machine may be shared, so read
the figures with its load (printed) in mind.

Usage: ``python bench/beam_runners.py [--limit N]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def load_idx(images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """One IDX image/label pair (gzip) as (N, 28, 28, 1) uint8 and int64 labels."""
    with gzip.open(DATA / images) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(DATA / labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def write_ingest(root: Path, limit: int) -> Path:
    """An ingest-style uint8 Examples artifact: train/test shards of 10k records."""
    from convflow.components.examples import write_split

    x_tr, y_tr = load_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    x_te, y_te = load_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    if limit:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[: limit // 6], y_te[: limit // 6]
    src = root / "ingest"
    src.mkdir()
    splits = {
        "train": write_split(src, "train", x_tr, y_tr),
        "test": write_split(src, "test", x_te, y_te),
    }
    meta = {"splits": splits, "dtype": "uint8", "image_shape": [28, 28, 1], "num_classes": 10}
    meta["class_names"] = [str(i) for i in range(10)]
    (src / "artifact.json").write_text(
        json.dumps({"type": "Examples", "fingerprint": "b", "producer": "b", "properties": meta})
    )
    return src


def run_preprocess(root: Path, src: Path, **params) -> tuple[float, str, int]:
    """Runs the component; returns (seconds, examples fingerprint, images)."""
    from convflow.components.base import Artifact, run_by_hand
    from convflow.components.preprocess import Params, preprocess

    metrics: dict = {}
    start = time.perf_counter()
    outputs = run_by_hand(
        preprocess, tempfile.mkdtemp(dir=root), {"examples": Artifact.load(src)},
        Params(**params), metrics=metrics,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds, outputs["examples"].fingerprint, int(metrics["images"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(root: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes on loopback."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    py = [sys.executable, "-m"]
    log = open(root / "dask.log", "w")  # noqa: SIM115 - lives as long as the cluster
    procs = [
        subprocess.Popen(
            [*py, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", port,
             "--no-dashboard"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    ]  # fmt: skip
    for i in range(workers):
        procs.append(
            subprocess.Popen(
                [*py, "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--no-dashboard", "--local-directory", str(root / f"w{i}")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
    with Client(address, timeout=120) as client:
        client.wait_for_workers(workers, timeout=180)
    return address, procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="use only the first N train images")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_beam_runners_"))
    procs: list[subprocess.Popen] = []
    try:
        src = write_ingest(root, args.limit)
        load = os.getloadavg()[0]
        print(f"{os.cpu_count()} cores, load average {load:.1f} at the start")
        address, procs = start_cluster(root, workers=2)
        dask = {"runner": "DaskRunner", "beam_args": [f"--dask_client_address={address}"]}
        runs = [
            ("DirectRunner in_memory", {"direct_running_mode": "in_memory"}),
            (
                "DirectRunner multi_processing ×2",
                {"direct_running_mode": "multi_processing", "direct_num_workers": 2},
            ),
            ("DaskRunner, 2 workers (cold)", dask),
            ("DaskRunner, 2 workers (warm)", dask),
        ]
        print(f"{'runner':<34} {'images':>7} {'seconds':>8} {'img/s':>8} {'ratio':>6}  same output")
        base_rate = base_print = None
        for name, params in runs:
            seconds, print_, n = run_preprocess(root, src, **params)
            rate = n / seconds
            base_rate, base_print = base_rate or rate, base_print or print_
            same = "yes" if print_ == base_print else "NO"
            print(
                f"{name:<34} {n:>7} {seconds:>8.1f} {rate:>8.0f} {rate / base_rate:>6.2f}  {same}",
                flush=True,
            )
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
