"""YOLO v1 (configs/fashion_scenes_yolo.yaml's network) with and without batch norm.

Trains the config's small YOLO v1 on a preprocessed scenes Examples artifact through the
train component's own tf.data and task (augmentation, YOLO grids, loss) and prints one JSON
line: per-epoch training-mode loss (running mean), validation loss and the train split's loss
in inference mode (BN's moving statistics), so a BN gap between the two modes shows.

    convflow run configs/fashion_scenes_yolo.yaml --artifact-root /tmp/bn/store --to preprocess \
        --set ingest.scenes.train_scenes=2000 --set ingest.scenes.validation_scenes=300
    python bench/yolo_batch_norm.py /tmp/bn/store/preprocess/<key>/examples [--bn] \
        [--momentum 0.99] [--epochs 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import keras
from convflow.components import tasks
from convflow.components.base import Artifact
from convflow.components.train import data, optim
from convflow.components.train.spec import TrainParams
from convflow.models import zoo

KWARGS = {"stages": "small", "head": "conv", "grid_size": 4, "width_multiplier": 0.5,
          "fc_units": 256, "dropout": 0.0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("examples", help="a preprocessed scenes Examples artifact directory")
    ap.add_argument("--bn", action="store_true", help="batch norm after every convolution")
    ap.add_argument("--momentum", type=float, default=0.99, help="BN moving-average momentum")
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    keras.utils.set_random_seed(42)
    examples, task = Artifact.load(args.examples), tasks.get("detection")
    kw = {**KWARGS, "batch_norm": args.bn}
    p = TrainParams(model="yolo_v1", model_kwargs={"yolo_v1": kw}, class_loss="crossentropy",
                    epochs=args.epochs, batch_size=64, optimizer="adam", learning_rate=0.002,
                    schedule="cosine", precision="float32", seed=42)  # fmt: skip
    p = dataclasses.replace(p, augment=dataclasses.replace(p.augment, flip="horizontal"))
    shape, classes = data.check_examples(examples)
    model = zoo.build("yolo_v1", input_shape=shape, num_classes=classes,
                      classifier_activation=None, **kw)  # fmt: skip
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = args.momentum
    steps = data.steps_per_epoch(data.split_count(examples, "train"), p.batch_size)
    model.compile(optimizer=optim.make_optimizer(p, steps),
                  **task.compile_args(p, examples, classes))  # fmt: skip
    out = model.outputs[0].shape
    train = data.train_dataset(examples, p, classes, 0, task, out)
    val = data.eval_dataset(examples, "validation", classes, 64, 0, task, p, out)
    t0 = time.perf_counter()
    h = model.fit(train, epochs=args.epochs, steps_per_epoch=steps, validation_data=val,
                  verbose=0)  # fmt: skip
    train_split = data.eval_dataset(examples, "train", classes, 64, 0, task, p, out)
    print(json.dumps({
        "batch_norm": args.bn, "momentum": args.momentum,
        "loss": [round(v, 3) for v in h.history["loss"]],
        "val_loss": [round(v, 3) for v in h.history["val_loss"]],
        "train_split_inference_loss": round(model.evaluate(train_split, verbose=0), 3),
        "seconds": round(time.perf_counter() - t0),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
