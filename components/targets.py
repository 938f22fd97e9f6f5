"""Target features and image geometry: what the examples codec and the tasks share.

A leaf module (numpy only): the codec (components/examples) stores the target features a
task declares, and the tasks (components/tasks) move their targets through :class:`Window`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A record's per-image dimensions a target feature may follow ("H", "W": the image's).
IMAGE_HEIGHT, IMAGE_WIDTH = "H", "W"
FEATURE_DTYPES = ("int64", "float32", "uint8")


@dataclass(frozen=True)
class TargetFeature:
    """One target feature of a record, declared by a task; the examples codec stores it.

    Attributes:
        name: the tf.train.Example key, e.g. ``"label"``, ``"mask"``, ``"boxes"``.
        dtype: ``int64`` (Int64List), ``float32`` (FloatList) or ``uint8`` (raw bytes).
        shape: per-record shape; ``()`` is a scalar, ``"H"``/``"W"`` follow the image's height
            and width, ``None`` is a variable length (at most one ``None``, first).
            Examples: label ``()``, mask ``("H", "W")``, boxes ``(None, 4)``.
    """

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] = ()

    def __post_init__(self):
        if self.dtype not in FEATURE_DTYPES:
            raise ValueError(f"{self.name}: dtype={self.dtype!r}; expected one of {FEATURE_DTYPES}")
        if None in self.shape[1:]:
            raise ValueError(f"{self.name}: only the first dimension may be variable (None)")

    @property
    def variable(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    def resolve(self, image_shape: Sequence[int], length: int | None = None) -> tuple[int, ...]:
        """The concrete shape for an image of ``image_shape`` (H, W, C) and a var length."""
        sizes = {IMAGE_HEIGHT: int(image_shape[0]), IMAGE_WIDTH: int(image_shape[1])}
        dims = [sizes.get(d, d) if isinstance(d, str) else d for d in self.shape]
        if self.variable:
            if length is None:
                raise ValueError(f"{self.name}: variable length needs the value's size")
            rest = int(np.prod(dims[1:], dtype=np.int64)) if dims[1:] else 1
            dims[0] = length // max(rest, 1)
        return tuple(int(d) for d in dims)


@dataclass(frozen=True)
class Window:
    """A crop-then-resize of one image: the geometry a task's targets must follow.

    The output image is rows ``y0 .. y0+height`` and columns ``x0 .. x0+width`` of the input
    (``in_height`` × ``in_width`` pixels), resized to ``out_height`` × ``out_width``. A crop
    has ``out == (height, width)``; a resize has the whole input as its window.
    """

    in_height: int
    in_width: int
    y0: int
    x0: int
    height: int
    width: int
    out_height: int
    out_width: int

    @classmethod
    def identity(cls, height: int, width: int) -> Window:
        return cls(height, width, 0, 0, height, width, height, width)

    def then(self, other: Window) -> Window:
        """This window followed by ``other`` (applied to this one's output), as one window."""
        sy, sx = self.height / self.out_height, self.width / self.out_width
        return Window(
            self.in_height,
            self.in_width,
            self.y0 + round(other.y0 * sy),
            self.x0 + round(other.x0 * sx),
            round(other.height * sy),
            round(other.width * sx),
            other.out_height,
            other.out_width,
        )
