"""Train-component throughput vs. a plain ``model.fit`` on in-memory arrays, and bf16 vs f32.

One run, side by side, on the same preprocessed Fashion-MNIST (ingest + preprocess are run
first unless ``--examples`` names a preprocessed Examples artifact):

1. the train component (tf.data from TFRecords, cache, per-epoch seeded shuffle, prefetch);
2. ``model.fit(x, y)`` on NumPy arrays of the same split: same model, batch, epochs, policy;
3. the train component again under float32.

Throughput is steady state: images per second over epochs 2..N (epoch 1 also traces the
graph and, for the component, fills the cache). Prints the component/plain ratio (target
≥ 0.9: the input pipeline is not the bottleneck) and the mixed_bfloat16 speed-up.

    python bench/train.py [--epochs 3] [--batch-size 128] [--examples DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from convflow.components.base import Artifact
from convflow.components.base import run_by_hand as run


def prepare(root: Path) -> Artifact:
    from convflow.components.ingest import ingest
    from convflow.components.ingest.spec import Params as IngestParams
    from convflow.components.preprocess import Params as PreprocessParams
    from convflow.components.preprocess import preprocess

    raw = run(ingest, root / "ingest", {}, IngestParams())["examples"]
    return run(preprocess, root / "preprocess", {"examples": raw}, PreprocessParams())["examples"]


def steady(seconds: list[float], count: int) -> float:
    tail = seconds[1:] or seconds
    return count / (sum(tail) / len(tail))


def component_ips(examples: Artifact, root: Path, params) -> float:
    from convflow.components.train import train

    model = run(train, root, {"examples": examples}, params)["model"]
    history = json.loads((model.path / "history.json").read_text())
    return steady(history["epoch_seconds"], examples.properties["splits"]["train"]["count"])


def plain_ips(examples: Artifact, params) -> float:
    import keras
    from convflow.components.examples import read_split
    from convflow.components.train.executor import build_network
    from convflow.components.train.optim import make_loss, make_metrics, make_optimizer
    from convflow.components.train.runtime import dtype_policy, resolve_precision, seed_everything

    num_classes = examples.properties["num_classes"]
    x, y = read_split(examples, "train")
    xv, yv = read_split(examples, "validation")
    y, yv = np.eye(num_classes, dtype="float32")[y], np.eye(num_classes, dtype="float32")[yv]
    seconds: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)

    seed_everything(params.seed, params.deterministic)
    steps = -(-len(x) // params.batch_size)
    with dtype_policy(resolve_precision(params.precision)):
        model = build_network(params, x.shape[1:], num_classes)
        model.compile(
            optimizer=make_optimizer(params, steps), loss=make_loss(params), metrics=make_metrics()
        )
    model.fit(x, y, batch_size=params.batch_size, epochs=params.epochs, shuffle=True,
              validation_data=(xv, yv), callbacks=[Clock()], verbose=0)  # fmt: skip
    return steady(seconds, len(x))


def main() -> None:
    from convflow.components.train import TrainParams
    from convflow.components.train.runtime import resolve_precision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--examples", help="a preprocessed Examples artifact directory")
    args = parser.parse_args()
    params = TrainParams(epochs=args.epochs, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory(prefix="convflow-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        examples = Artifact.load(args.examples) if args.examples else prepare(root / "data")
        print(f"data ready in {time.perf_counter() - t0:.1f}s: {examples.uri}")
        policy = resolve_precision("auto")
        mixed = dataclasses.replace(params, precision=policy)
        fast = component_ips(examples, root / "component", mixed)
        plain = plain_ips(examples, mixed)
        f32_params = dataclasses.replace(params, precision="float32")
        f32 = component_ips(examples, root / "f32", f32_params)
    print(f"model={params.model} batch={params.batch_size} epochs={params.epochs} policy={policy}")
    print(f"train component      {fast:10.0f} images/s")
    print(f"plain model.fit      {plain:10.0f} images/s")
    print(f"ratio component/plain {fast / plain:9.2f}  (target >= 0.9)")
    print(f"component float32    {f32:10.0f} images/s")
    print(f"{policy} speed-up over float32: {fast / f32:.2f}x")


if __name__ == "__main__":
    main()
