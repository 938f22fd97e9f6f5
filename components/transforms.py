"""The one transform table: name -> settings -> keras.ops function -> Keras layer.

Beam (the preprocess executor), the served model (serving/model.py) and the sample grid
(preprocess/samples) all iterate :data:`TRANSFORMS`, so a new transform is one row here plus
its function and layer in ``models/layers/contrast.py``. The table itself is light (names,
dataclasses): ``convflow validate`` reads it to check ``preprocess.steps`` without Keras.

Scaling to [0, 1] (``scale``) always runs first and is not listed in ``preprocess.steps``.
Geometric rows (crop, resize) move pixels, so the pipeline's task moves its targets along
(:meth:`Task.move_targets` with the row's :func:`window`); fitted rows (standardize) use
statistics measured on the training split by the steps before them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from convflow.components.base import param
from convflow.components.targets import Window

# models.layers.contrast.INTERPOLATIONS, repeated so that reading settings needs no keras
# (a test keeps the two equal).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")

SCALE, CROP, RESIZE, GCN, LCN, STANDARDIZE = "scale", "crop", "resize", "gcn", "lcn", "standardize"


@dataclass(frozen=True)
class GcnParams:
    """Global contrast normalization, Goodfellow et al. (2016) eq. 12.3."""

    scale: float = param(1.0, help="s: contrast of the output", min_exclusive=0.0)
    lam: float = param(0.0, help="λ: regularizer added to the per-image variance", min=0.0)
    eps: float = param(1e-8, help="ε: smallest divisor (near-constant images)", min_exclusive=0.0)


@dataclass(frozen=True)
class LcnParams:
    """Local contrast normalization (Jarrett et al., 2009) with a Gaussian window."""

    kernel_size: int = param(9, help="odd side of the Gaussian window, pixels", min=1, max=99)
    sigma: float = param(2.0, help="σ of the Gaussian window, pixels", min_exclusive=0.0)
    floor: float = param(1e-4, help="smallest divisor", min_exclusive=0.0)


@dataclass(frozen=True)
class Transform:
    """One row of the table.

    Attributes:
        name: the name in ``preprocess.steps`` and in TransformInfo.
        label: the Beam step label (``| "GlobalContrastNormalize" >> ...``).
        function: the keras.ops function in ``models.layers.contrast`` Beam calls per batch.
        layer: the Keras layer class in ``models.layers.contrast`` the served model uses.
        layer_name: the served layer's name (structured names: tests and surgery use them).
        settings: reads this row's keyword settings from the preprocess params.
        geometric: moves pixels; targets follow through :func:`window`.
        fitted: its settings are statistics of the training split (measured in Beam).
    """

    name: str
    label: str
    function: str
    layer: str
    layer_name: str
    settings: Callable[[Any], dict[str, Any]]
    geometric: bool = False
    fitted: bool = False


def _resize_settings(p) -> dict[str, Any]:
    return {"size": p.size, "interpolation": p.interpolation, "antialias": p.antialias}


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform(SCALE, "ScaleToUnit", "scale_to_unit", "UnitScale", "scale", lambda p: {}),
        Transform(
            CROP, "CropToSquare", "center_square_crop", "CenterSquareCrop", "square_crop",
            lambda p: {}, geometric=True,
        ),
        Transform(
            RESIZE, "Resize", "resize", "SquareResize", "resize", _resize_settings, geometric=True
        ),
        Transform(
            GCN, "GlobalContrastNormalize", "global_contrast_normalize",
            "GlobalContrastNormalization", "gcn", lambda p: dataclasses.asdict(p.gcn),
        ),
        Transform(
            LCN, "LocalContrastNormalize", "local_contrast_normalize",
            "LocalContrastNormalization", "lcn", lambda p: dataclasses.asdict(p.lcn),
        ),
        Transform(
            STANDARDIZE, "Standardize", "standardize", "ChannelStandardization", "standardize",
            lambda p: {}, fitted=True,
        ),
    )
}  # fmt: skip
#: the names ``preprocess.steps`` may list (scaling always runs first).
STEPS = tuple(n for n in TRANSFORMS if n != SCALE)


def check_steps(steps: Sequence[str], lcn: LcnParams | None = None) -> None:
    """Order and settings rules of ``preprocess.steps``.

    Raises:
        ValueError: one line naming the key, the value and the rule.
    """
    steps = list(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"preprocess.steps={steps!r}: unknown {unknown[0]!r}; expected {STEPS}")
    if len(set(steps)) != len(steps):
        raise ValueError(f"preprocess.steps={steps!r} repeats a step; list each at most once")
    if STANDARDIZE in steps and steps[-1] != STANDARDIZE:
        raise ValueError(
            f"preprocess.steps={steps!r}: 'standardize' must be last, because its statistics "
            "are measured on the output of the steps before it"
        )
    # Checked even when 'lcn' is not a step: the statistics' sample grid always shows LCN.
    if lcn is not None and lcn.kernel_size % 2 == 0:
        raise ValueError(
            f"preprocess.lcn.kernel_size={lcn.kernel_size} must be odd (a centred window)"
        )


def settings_of(steps: Sequence[str], params) -> dict[str, dict[str, Any]]:
    """Each listed row's settings from the preprocess params (fitted rows: filled later)."""
    return {s: TRANSFORMS[s].settings(params) for s in steps}


def window(name: str, settings: Mapping[str, Any], height: int, width: int) -> Window:
    """Where a geometric transform takes its output from, for an input of height × width."""
    if name == CROP:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2  # as contrast.center_square_crop
        return Window(height, width, top, left, side, side, side, side)
    if name == RESIZE:
        size = int(settings["size"])
        return Window(height, width, 0, 0, height, width, size, size)
    raise ValueError(f"{name!r} is not a geometric transform")


def window_for(steps: Sequence[str], settings, height: int, width: int) -> Window:
    """The whole crop/resize chain of ``steps`` as one window (identity when there is none)."""
    total = Window.identity(height, width)
    for name in steps:
        if TRANSFORMS[name].geometric:
            total = total.then(
                window(name, settings.get(name, {}), total.out_height, total.out_width)
            )
    return total


def resolve(name: str, settings: Mapping[str, Any]):
    """(keras.ops function with its settings bound, the Keras layer) of one row.

    Imports ``models.layers.contrast`` (Keras): call it from executors and model builders.
    """
    import functools

    from convflow.models.layers import contrast  # Keras: executors and serving only

    row = TRANSFORMS[name]
    fn = getattr(contrast, row.function)
    bound = functools.partial(fn, **settings) if settings else fn
    layer = getattr(contrast, row.layer)(**settings, name=row.layer_name)
    return bound, layer
