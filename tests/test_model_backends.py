"""Every backend-agnostic model builds and runs under JAX too (DESIGN: models/ is keras-only).

One subprocess with ``KERAS_BACKEND=jax`` builds each registered model at its test input and
runs a batch. For one model per builder it also loads the weights of the same model built here
under TensorFlow and must reproduce TensorFlow's outputs, which catches backend differences
(padding conventions, op semantics) that a shape check would miss.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from convflow import models
from convflow.models.zoo import get_spec

BACKEND = "jax"  # the tests' own install (the test extra), not the main job's
INSTALL = "pip install -e .[test] (scripts/test.sh does)"
NUM_CLASSES, BATCH, SEED = 5, 2, 0
# Cross-checked against TensorFlow: the first model of each builder, minus the deep variants.
HEAVY = {"resnet101", "resnet110", "resnet152", "densenet169", "densenet201"}

CHILD = r"""
import json, sys
import keras, numpy as np
from convflow import models
from convflow.models.zoo import get_spec

work, backend, classes, seed, batch = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
assert keras.backend.backend() == backend, keras.backend.backend()
references = json.loads(open(f"{work}/references.json").read())
results = {}
for name in models.list_models():
    spec = get_spec(name)
    if not spec.backend_agnostic:
        continue
    try:
        model = models.build(name, input_shape=spec.test_input_shape, num_classes=classes,
                             **spec.test_kwargs)
        x = np.random.default_rng(seed).uniform(0, 1, (batch, *spec.test_input_shape))
        if name in references:
            model.load_weights(references[name])
        ys = [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(
            model(x.astype("float32"), training=False))]
        row = {"shapes": [list(y.shape) for y in ys],
               "finite": all(bool(np.all(np.isfinite(y))) for y in ys)}
        if name in references:
            want = np.load(f"{work}/{name}.npz")
            row["max_abs_diff"] = max(float(np.max(np.abs(y - want[f"y{i}"])))
                                      for i, y in enumerate(ys))
    except Exception as e:  # report every model, not just the first failure
        row = {"error": f"{type(e).__name__}: {e}"[:2000]}
    results[name] = row
    keras.backend.clear_session()
open(f"{work}/results.json", "w").write(json.dumps(results))
"""


def _agnostic():
    return [n for n in models.list_models() if get_spec(n).backend_agnostic]


def _cross_checked():
    first = {}
    for name in _agnostic():
        builder = get_spec(name).builder
        if name not in HEAVY:
            first.setdefault(getattr(builder, "func", builder), name)
    return sorted(first.values())


def _tensorflow_references(work: Path) -> dict[str, str]:
    references = {}
    for name in _cross_checked():
        spec = get_spec(name)
        model = models.build(
            name, input_shape=spec.test_input_shape, num_classes=NUM_CLASSES, **spec.test_kwargs
        )
        x = np.random.default_rng(SEED).uniform(0, 1, (BATCH, *spec.test_input_shape))
        ys = keras.tree.flatten(model(x.astype("float32"), training=False))
        np.savez(
            work / f"{name}.npz",
            **{f"y{i}": keras.ops.convert_to_numpy(y) for i, y in enumerate(ys)},
        )
        model.save_weights(work / f"{name}.weights.h5")
        references[name] = str(work / f"{name}.weights.h5")
    return references


@pytest.fixture(scope="module")
def other_backend(tmp_path_factory):
    if importlib.util.find_spec(BACKEND) is None:
        pytest.fail(f"the {BACKEND} backend is not installed; {INSTALL}", pytrace=False)
    work = tmp_path_factory.mktemp(f"backend_{BACKEND}")
    (work / "references.json").write_text(json.dumps(_tensorflow_references(work)))
    # XLA compiles every op the zoo runs once; without LLVM's optimizations the whole zoo
    # took 289 s instead of 424 s on the loaded 2-core CPU, and the outputs still agree.
    env = {
        **os.environ,
        "KERAS_BACKEND": BACKEND,
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_backend_optimization_level=0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(work), BACKEND, *map(str, (NUM_CLASSES, SEED, BATCH))],
        env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((work / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", _agnostic())
def test_model_runs_under_jax(other_backend, name):
    row = other_backend[name]
    assert "error" not in row, row.get("error")
    assert row["finite"], f"{name} gives NaN/inf under {BACKEND}"
    assert all(shape[0] == BATCH for shape in row["shapes"]), row["shapes"]
    if get_spec(name).kind == "classification":
        assert all(shape == [BATCH, NUM_CLASSES] for shape in row["shapes"]), row["shapes"]
    if name in _cross_checked():
        # Same weights, same input: the backends agree to float32 round-off.
        assert row["max_abs_diff"] < 1e-4, f"{name}: |jax − tf| = {row['max_abs_diff']}"
