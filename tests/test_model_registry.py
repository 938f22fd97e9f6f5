"""One test over the whole model registry (timm's test_models.py pattern).

Every registered model is built at its ``test_input_shape`` with its ``test_kwargs``, run on a
small batch, and round-tripped through ``get_config``/``from_config`` and a ``.keras`` file. A
newly registered model is covered without anyone adding a test.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow import models
from convflow.models.zoo import describe, get_spec

BATCH, NUM_CLASSES = 2, 5


def _inputs(shape):
    return np.random.default_rng(0).uniform(0.0, 1.0, (BATCH, *shape)).astype("float32")


def _outputs(model, x):
    """Outputs as a {name: ndarray} dict (single-output models give {"output": ...})."""
    y = model(x, training=False)
    if isinstance(y, dict):
        return {k: keras.ops.convert_to_numpy(v) for k, v in y.items()}
    if isinstance(y, list | tuple):
        return {str(i): keras.ops.convert_to_numpy(v) for i, v in enumerate(y)}
    return {"output": keras.ops.convert_to_numpy(y)}


def _check_shapes(spec, outputs):
    for key, y in outputs.items():
        assert y.shape[0] == BATCH, f"{spec.name} output {key} has shape {y.shape}"
        assert np.all(np.isfinite(y)), f"{spec.name} output {key} has NaN/inf"
        if spec.kind == "classification":
            assert y.shape == (BATCH, NUM_CLASSES), f"{spec.name} output {key}: {y.shape}"
        elif spec.kind == "segmentation":
            # Dense prediction: one score per class at every input position.
            assert y.shape == (BATCH, *spec.test_input_shape[:-1], NUM_CLASSES), (
                f"{spec.name} output {key}: {y.shape}"
            )


# The deepest variants (100+ layers, 5–15 s each on 2 cores) are marked slow so a developer
# can run `-m "not slow"`; CI runs them, as they are the only test of those stage tables.
HEAVY = {"resnet101", "resnet110", "resnet152", "densenet169", "densenet201"}


def _registry_params(kind=None):
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name
        for name in models.list_models(kind=kind)
    ]


@pytest.mark.parametrize("name", _registry_params())
def test_model_builds_runs_and_round_trips(name, tmp_path):
    spec = get_spec(name)
    model = models.build(
        name, input_shape=spec.test_input_shape, num_classes=NUM_CLASSES, **spec.test_kwargs
    )
    x = _inputs(spec.test_input_shape)
    outputs = _outputs(model, x)
    _check_shapes(spec, outputs)
    if spec.kind == "classification":  # mixed precision must never softmax in float16
        assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    # ModelSpec names its first convolution and classifier (kernel plot, initializers).
    assert spec.classifier in {layer.name for layer in model.layers}
    if spec.first_conv is not None:
        assert len(model.get_layer(spec.first_conv).kernel.shape) == 4

    # type(model): functional models rebuild via keras.Model, keras-cv tasks via their class.
    clone = type(model).from_config(model.get_config())
    assert len(clone.layers) == len(model.layers)
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    clone.set_weights(model.get_weights())
    for key, y in _outputs(clone, x).items():
        np.testing.assert_allclose(y, outputs[key], rtol=1e-5, atol=1e-6, err_msg=key)

    if not spec.backend_agnostic:
        return  # TF-bound wrappers (keras-cv) keep their own save format tests
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for key, y in _outputs(loaded, x).items():
        np.testing.assert_allclose(y, outputs[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _one_per_builder(kind):
    """One name per builder function (variants differ only in data), light ones first."""
    seen = {}
    for name in sorted(models.list_models(kind=kind), key=lambda n: (n in HEAVY, n)):
        builder = get_spec(name).builder
        seen.setdefault(getattr(builder, "func", builder), name)
    return sorted(seen.values())


@pytest.mark.parametrize("name", _one_per_builder("classification"))
def test_classifier_features_without_top(name):
    """include_top=False + pooling gives (B, C) vectors and no "predictions" layer."""
    spec = get_spec(name)
    kwargs = {"input_shape": spec.test_input_shape, "num_classes": NUM_CLASSES, **spec.test_kwargs}
    features = models.build(name, **{**kwargs, "include_top": False, "pooling": "avg"})
    assert len(features.output.shape) == 2
    assert all("predictions" not in layer.name for layer in features.layers)


@pytest.mark.parametrize("bad, message", [
    ({"pooling": "mean"}, "pooling='mean'"),
    ({"num_classes": 0}, "num_classes=0"),
])  # fmt: skip
def test_every_classifier_rejects_bad_shared_args(bad, message):
    for name in models.list_models(kind="classification"):
        spec = get_spec(name)
        kwargs = {"input_shape": spec.test_input_shape, "num_classes": NUM_CLASSES}
        with pytest.raises(ValueError, match=message):
            models.build(name, **{**kwargs, **spec.test_kwargs, **bad})


def test_describe_lists_every_model_with_its_parameter_count():
    # Built at their defaults, so only small models here; the README table lists them all.
    rows = describe(names=["resnet20", "lenet5"])
    assert [row["name"] for row in rows] == ["lenet5", "resnet20"]
    lenet, resnet20 = rows
    assert (lenet["params"], tuple(lenet["default_input"])) == (61_706, (32, 32, 1))
    assert lenet["paper"].startswith("LeCun et al. 1998")
    assert (resnet20["params"], resnet20["kind"]) == (271_098, "classification")
    assert all(row["input_sizes"] for row in rows)


def test_zoo_imports_every_family_that_registers_models():
    # models/zoo.py lists the family modules by hand (so cache keys can follow the imports);
    # a new family file that registers models must be added there.
    import ast
    from pathlib import Path

    root = Path(models.__file__).parent
    registering = {
        p.stem
        for p in root.glob("*.py")
        if p.stem not in {"registry", "zoo", "__init__"} and "register(" in p.read_text()
    }
    tree = ast.parse((root / "zoo.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert registering and registering <= imported
