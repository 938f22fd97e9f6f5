"""Name -> builder registry for the model zoo: a leaf module (it imports no model).

Every builder shares one signature (``input_shape, num_classes, include_top, pooling,
classifier_activation, name`` plus family knobs) and registers itself with
``@register("resnet50", ...)`` when its family module is imported. ``models/zoo.py`` imports
every family and offers ``build``/``get_spec``/``list_models``; ``models/catalog.py`` is the
light side (metadata read from catalog.json, no Keras) for the CLI and config checks. The
whole-registry test walks ``zoo.list_models()``, so a new model is tested the moment it is
registered.
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
        first_conv: name of the first 2-D convolution (whose kernels the first-layer plot
            shows and the unsupervised initializers set); None when there is none (1-D and
            3-D models).
        classifier: name of the layer that outputs the class scores.
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
    first_conv: str | None = None
    classifier: str = "predictions"


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


def registered() -> dict[str, ModelSpec]:
    """The models registered so far (all of them once ``convflow.models.zoo`` is imported)."""
    return dict(_REGISTRY)
