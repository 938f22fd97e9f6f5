"""What the box sources (COCO, Pascal VOC, YOLO txt, scenes) hand to ingest.

Each source returns ``(class names, {split: [BoxRecord]}, rejected)``: ``split`` is
``train``/``validation``/``test``, or ``all`` when the source is not split. ``rejected`` holds
one ``{"source": path, "reason": ...}`` per record that cannot be used, so nothing is dropped
silently. An image with no boxes is a valid negative example.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from convflow.components.boxes import BoxTargets
from convflow.components.images import ImageRejected, decode_file

# Split names as the sources spell them -> the project's split names.
SPLIT_ALIASES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}


@dataclass
class BoxRecord:
    """One image and its boxes (stored convention, see ``components.boxes``).

    Attributes:
        image: (H, W, C) uint8.
        targets: the image's boxes, classes and ignore flags.
        source: the image file (for rejections and plots).
    """

    image: np.ndarray
    targets: BoxTargets
    source: str


def rejection(source, reason: str) -> dict:
    return {"source": str(source), "reason": reason}


def decode_image(path: Path):
    """``(image, None)`` or ``(None, reason)``: the project's one image decoder."""
    if not path.is_file():
        return None, f"image file missing: {path}"
    try:
        return decode_file(path), None
    except ImageRejected as e:
        return None, f"{path}: {e}"


def class_index(names: list[str], name: str) -> int | None:
    try:
        return names.index(name)
    except ValueError:
        return None


def read_class_names(path: Path) -> list[str]:
    """``classes.txt``: one name per line, index = line; blank lines are skipped."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
