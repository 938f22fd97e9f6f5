"""Name -> builder registry for the model zoo.

Every builder shares one signature (``input_shape, num_classes, include_top, pooling,
classifier_activation, name`` plus family knobs) and registers itself with
``@register("resnet50", ...)``. The whole-registry test walks :func:`list_models`, so a new
model is tested the moment it is registered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("classification", "segmentation", "detection")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model besides its builder.

    Attributes:
        name: registry name, e.g. ``"resnet50"``.
        builder: the function that builds the keras.Model.
        family: file-level family, e.g. ``"resnet"``.
        paper: the reference, e.g. ``"He et al. 2016, Deep Residual Learning"``.
        kind: one of KINDS.
        test_input_shape: a small input the whole-registry test builds it at.
        input_sizes: human text for ``convflow models``: which inputs it accepts.
        test_kwargs: extra builder kwargs for the small test build.
        backend_agnostic: False for wrappers bound to TensorFlow (keras-cv).
    """

    name: str
    builder: Callable[..., Any]
    family: str
    paper: str
    kind: str = "classification"
    test_input_shape: tuple[int, ...] = (32, 32, 3)
    input_sizes: str = "any H×W ≥ 32"
    test_kwargs: dict[str, Any] = field(default_factory=dict)
    backend_agnostic: bool = True


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, **spec: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``@register("vgg16", family="vgg", paper="Simonyan & Zisserman 2014")``."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        kind = spec.get("kind", "classification")
        if kind not in KINDS:
            raise ValueError(f"Unknown kind={kind!r} for {name!r}; expected one of {KINDS}")
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, **spec)
        return builder

    return wrap


def variant(builder: Callable[..., Any], **fixed: Any) -> Callable[..., Any]:
    """``builder`` with a variant's settings bound (callers may still override any of them).

    ``register("resnet50", ...)(variant(ResNet, depth=50))``: a variant is data, not a copy
    of the builder.
    """
    bound = functools.partial(builder, **fixed)
    settings = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    bound.__name__ = bound.__qualname__ = builder.__name__
    bound.__doc__ = f"{builder.__name__}({settings}, ...).\n\n{builder.__doc__ or ''}"
    return bound


def _load_all() -> None:
    # Importing the family modules fills the registry; done lazily so `import models.registry`
    # stays cheap for the CLI.
    import convflow.models.zoo  # noqa: F401


def get_spec(name: str) -> ModelSpec:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"Unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build(name: str, **kwargs: Any):
    """Builds a registered model: ``build("resnet20", input_shape=(32, 32, 3), num_classes=10)``."""
    return get_spec(name).builder(**kwargs)


def list_models(kind: str | None = None) -> list[str]:
    """Registered names, sorted; ``kind`` filters to one of KINDS."""
    _load_all()
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def describe(names: list[str] | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Rows for ``convflow models``: one dict per model, sorted by name.

    Each row has ``name``, ``kind``, ``family``, ``params`` (counted on the model built with
    all its defaults, i.e. at its default input and class count), ``default_input``,
    ``input_sizes`` and ``paper``. Building is what counts the parameters exactly, so this
    takes seconds per large model; pass ``names`` to describe a few.
    """
    import inspect

    import keras

    rows = []
    for name in names if names is not None else list_models(kind):
        spec = get_spec(name)
        model = spec.builder()
        default = inspect.signature(spec.builder).parameters.get("input_shape")
        rows.append(
            {
                "name": name,
                "kind": spec.kind,
                "family": spec.family,
                "params": int(model.count_params()),
                "default_input": None if default is None else tuple(default.default),
                "input_sizes": spec.input_sizes,
                "paper": spec.paper,
            }
        )
        del model
        keras.backend.clear_session()  # free the weights before the next (possibly big) build
    return sorted(rows, key=lambda row: row["name"])
