"""Mixed precision on a GPU through Keras 3 on the JAX backend (no TensorFlow needed).

    KERAS_BACKEND=jax python bench/gpu_precision.py [--models lenet5 resnet20 resnet50]

For each model: training images/s under float32 and under mixed_float16 (and
mixed_bfloat16), measured in this run on synthetic data of the model's input size, after
one warm-up epoch that pays compilation. Prints the speed-up ratios. It also builds every
backend-agnostic model in the zoo and runs one forward pass, as a check that the
definitions run on this backend and device.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
from convflow import models

SHAPES = {"lenet5": (28, 28, 1), "resnet20": (32, 32, 3), "resnet50": (224, 224, 3)}
BATCH = {"lenet5": 256, "resnet20": 256, "resnet50": 128}


def throughput(name: str, policy: str, steps: int) -> float:
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    shape, batch = SHAPES[name], BATCH[name]
    model = models.build(name, input_shape=shape, num_classes=10)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy"
    )
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, *shape), dtype=np.float32)
    y = rng.integers(0, 10, batch * steps)
    model.fit(x[: batch * 2], y[: batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - t0)


def forward_all() -> None:
    keras.mixed_precision.set_global_policy("float32")
    ok, bad = 0, []
    for name in models.list_models():
        spec = models.get_spec(name)
        if not spec.backend_agnostic:
            continue
        try:
            m = spec.builder(input_shape=spec.test_input_shape, num_classes=4, **spec.test_kwargs)
            out = m(np.zeros((2, *spec.test_input_shape), np.float32))
            outs = list(out.values()) if isinstance(out, dict) else out
            outs = outs if isinstance(outs, list | tuple) else [outs]
            assert all(np.isfinite(np.asarray(o)).all() for o in outs)
            ok += 1
        except Exception as e:
            bad.append(f"{name}: {type(e).__name__}: {str(e)[:160]}")
    print(f"forward pass on {keras.backend.backend()}: {ok} models ok, {len(bad)} failed")
    for line in bad:
        print("  FAILED", line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(SHAPES))
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    if keras.backend.backend() == "jax":
        import jax

        print("backend jax, devices", jax.devices())
    print(
        f"{'model':<10}{'float32 img/s':>15}{'mixed_float16':>15}{'mixed_bf16':>13}"
        f"{'f16 speed-up':>14}{'bf16 speed-up':>15}"
    )
    for name in args.models:
        f32 = throughput(name, "float32", args.steps)
        f16 = throughput(name, "mixed_float16", args.steps)
        bf16 = throughput(name, "mixed_bfloat16", args.steps)
        print(
            f"{name:<10}{f32:>15,.0f}{f16:>15,.0f}{bf16:>13,.0f}"
            f"{f16 / f32:>13.2f}x{bf16 / f32:>14.2f}x",
            flush=True,
        )
    forward_all()


if __name__ == "__main__":
    main()
