"""The whole zoo: imports every family module (so their ``@register`` calls run) and builds.

The imports are spelled out (not discovered) so that the pipeline's cache keys, which
follow import statements, see every family a model may come from: editing
models/lenet.py re-runs the train step that builds a LeNet.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
from convflow.models import (  # noqa: F401
    alexnet,
    audio,
    deconvnet,
    densenet,
    dilated,
    fcn,
    googlenet,
    lenet,
    resnet,
    segnet,
    unet,
    vgg,
    volumetric,
    yolo,
    yolov8,
)
from convflow.models.registry import KINDS, ModelSpec, registered


def get_spec(name: str) -> ModelSpec:
    """The registered spec of ``name``.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    specs = registered()
    if name not in specs:
        raise KeyError(f"Unknown model {name!r}; known models: {', '.join(sorted(specs))}")
    return specs[name]


def build(name: str, **kwargs: Any):
    """Builds a registered model: ``build("resnet20", input_shape=(32, 32, 3), num_classes=10)``.

    Raises:
        KeyError: unknown name. TypeError, ValueError: arguments the builder rejects.
    """
    return get_spec(name).builder(**kwargs)


def list_models(kind: str | None = None) -> list[str]:
    """Registered names, sorted; ``kind`` filters to one of KINDS."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"Unknown kind={kind!r}; expected one of {KINDS}")
    return sorted(n for n, s in registered().items() if kind is None or s.kind == kind)


def describe(names: list[str] | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Catalog rows, measured: one dict per model, sorted by name (models/catalog.py).

    Each row has ``name``, ``kind``, ``family``, ``paper``, ``params`` (counted on the model
    built with all its defaults, i.e. at its default input and class count),
    ``default_input``, ``input_sizes``, ``arguments`` (the builder's parameter names),
    ``accepts_any_kwargs``, ``first_conv`` and ``classifier``. Building is what counts the
    parameters exactly, so this takes seconds per large model; ``convflow models`` reads the
    stored catalog instead.
    """
    rows = []
    for name in names if names is not None else list_models(kind):
        spec = get_spec(name)
        model = spec.builder()
        signature = inspect.signature(spec.builder).parameters
        default = signature.get("input_shape")
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "family": spec.family,
                "paper": spec.paper,
                "params": int(model.count_params()),
                "default_input": None if default is None else list(default.default),
                "input_sizes": spec.input_sizes,
                "arguments": sorted(n for n, p in signature.items() if p.kind is not p.VAR_KEYWORD),
                "accepts_any_kwargs": any(p.kind is p.VAR_KEYWORD for p in signature.values()),
                "first_conv": spec.first_conv,
                "classifier": spec.classifier,
            }
        )
        del model
        keras.backend.clear_session()  # free the weights before the next (possibly big) build
    return sorted(rows, key=lambda row: row["name"])
