"""Bounding boxes: the one stored convention, conversions at the edges, and box geometry.

Stored convention (ingest output, preprocess output, training targets): per image, boxes
``(n, 4)`` float32 **normalized** ``[y_min, x_min, y_max, x_max]`` in [0, 1] (fractions of the
image's height and width, the TF Object Detection API convention), ``classes`` ``(n,)`` int64
(index into the class names) and ``ignore`` ``(n,)`` bool (COCO ``iscrowd`` / VOC
``difficult``: kept for evaluation, where it is COCO's crowd flag, never a training target).

Edges: COCO ``[x, y, w, h]`` pixels, Pascal VOC ``xmin ymin xmax ymax`` 1-based inclusive
pixels, YOLO ``cx cy w h`` normalized, and the served model's ``[x1, y1, x2, y2]`` pixels of the
caller's image. Geometry (:func:`center_crop`, :func:`flip_horizontal`) moves, clips and drops
boxes the way ``models.layers.contrast`` moves the pixels; a square resize leaves normalized
boxes unchanged. Everything here is numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Pixels a box may stick out of its image and still be clipped rather than rejected:
# COCO and VOC annotations routinely end half a pixel past the border.
BORDER_TOLERANCE_PX = 1.0


class BadBox(ValueError):
    """A box that cannot be stored; its message is the rejection reason."""


@dataclass
class BoxTargets:
    """One image's boxes in the stored convention.

    Attributes:
        boxes: (n, 4) float32 normalized [y_min, x_min, y_max, x_max].
        classes: (n,) int64 class indices.
        ignore: (n,) bool, True for crowd/difficult boxes (evaluation only).
    """

    boxes: np.ndarray
    classes: np.ndarray
    ignore: np.ndarray

    @classmethod
    def empty(cls) -> BoxTargets:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))

    @classmethod
    def of(cls, boxes, classes, ignore=None) -> BoxTargets:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        classes = np.asarray(classes, np.int64).reshape(-1)
        ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool)
        if not len(boxes) == len(classes) == len(ignore):
            raise ValueError(
                f"{len(boxes)} boxes, {len(classes)} classes, {len(ignore)} ignore flags"
            )
        return cls(boxes, classes, ignore.reshape(-1))

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, keep: np.ndarray) -> BoxTargets:
        return BoxTargets(self.boxes[keep], self.classes[keep], self.ignore[keep])


def pixel_corners_to_normalized(x1, y1, x2, y2, height: int, width: int) -> np.ndarray:
    """Pixel corners -> normalized [y_min, x_min, y_max, x_max], validated and clipped.

    A box may extend ``BORDER_TOLERANCE_PX`` past the image and is then clipped to it.

    Raises:
        BadBox: non-positive width or height, or lying outside the image beyond the tolerance.
    """
    values = np.array([x1, y1, x2, y2], np.float64)
    if not np.isfinite(values).all():
        raise BadBox(f"box {values.tolist()} has non-finite coordinates")
    if x2 <= x1 or y2 <= y1:
        raise BadBox(f"box x {x1:g}..{x2:g}, y {y1:g}..{y2:g} px has non-positive size")
    t = BORDER_TOLERANCE_PX
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        raise BadBox(
            f"box x {x1:g}..{x2:g}, y {y1:g}..{y2:g} px lies outside the {width}x{height} image"
        )
    x1, x2 = np.clip([x1, x2], 0, width)
    y1, y2 = np.clip([y1, y2], 0, height)
    if x2 <= x1 or y2 <= y1:
        raise BadBox(f"box has no area inside the {width}x{height} image")
    return np.array([y1 / height, x1 / width, y2 / height, x2 / width], np.float32)


def from_coco(bbox, height: int, width: int) -> np.ndarray:
    """COCO ``[x, y, w, h]`` (pixels, top-left origin) -> stored convention.

    Raises:
        BadBox: see :func:`pixel_corners_to_normalized`; also a bbox that is not 4 numbers.
    """
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise BadBox(f"bbox {bbox!r} is not [x, y, w, h]") from None
    if w <= 0 or h <= 0:
        raise BadBox(f"bbox {list(bbox)} has non-positive size (w={w:g}, h={h:g})")
    return pixel_corners_to_normalized(x, y, x + w, y + h, height, width)


def from_voc(xmin, ymin, xmax, ymax, height: int, width: int) -> np.ndarray:
    """Pascal VOC ``bndbox`` (1-based, inclusive pixel indices) -> stored convention.

    Pixel ``i`` (1-based) spans ``[i - 1, i)``, so the box covers ``[xmin - 1, xmax)``.
    """
    return pixel_corners_to_normalized(xmin - 1, ymin - 1, xmax, ymax, height, width)


def from_yolo(cx, cy, w, h, height: int, width: int) -> np.ndarray:
    """YOLO txt ``cx cy w h`` (normalized centre and size) -> stored convention."""
    if w <= 0 or h <= 0:
        raise BadBox(f"box cx={cx:g} cy={cy:g} w={w:g} h={h:g} has non-positive size")
    return pixel_corners_to_normalized(
        (cx - w / 2) * width, (cy - h / 2) * height,
        (cx + w / 2) * width, (cy + h / 2) * height, height, width,
    )  # fmt: skip


def to_pixel_xyxy(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stored (n, 4) -> ``[x1, y1, x2, y2]`` pixels of a ``height × width`` image (float32)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.stack(
        [boxes[:, 1] * width, boxes[:, 0] * height, boxes[:, 3] * width, boxes[:, 2] * height],
        axis=1,
    ).astype(np.float32)


def to_coco_xywh(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stored (n, 4) -> COCO ``[x, y, w, h]`` pixels (float64, as pycocotools reads them)."""
    xyxy = to_pixel_xyxy(boxes, height, width).astype(np.float64)
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def to_xyxy_normalized(boxes: np.ndarray) -> np.ndarray:
    """Stored [y1, x1, y2, x2] -> normalized [x1, y1, x2, y2] (``models.yolo``'s order)."""
    return np.asarray(boxes, np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]]


def from_xyxy_normalized(boxes: np.ndarray) -> np.ndarray:
    """Normalized [x1, y1, x2, y2] -> stored [y1, x1, y2, x2]."""
    return np.asarray(boxes, np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]]


def center_crop_window(height: int, width: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of the centred square, exactly as ``contrast.center_square_crop``."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def crop(targets: BoxTargets, in_height, in_width, y0, x0, height, width, min_size=1e-6):
    """Moves boxes of an ``in_height × in_width`` image into the crop window rows
    ``y0 .. y0 + height``, columns ``x0 .. x0 + width`` (pixels).

    Boxes are shifted and rescaled to the window, then clipped to it; a box left with a side
    of at most ``min_size`` (normalized) has been cropped away and is dropped. A resize of the
    window changes no normalized coordinate, so crop-then-resize needs only this.

    Args:
        targets: the image's boxes, stored convention.
        in_height: image height before the crop, pixels.
        in_width: image width before the crop, pixels.
        y0: first row of the window.
        x0: first column of the window.
        height: window height, pixels.
        width: window width, pixels.
        min_size: smallest normalized side a kept box may have.

    Returns:
        ``(BoxTargets in the window's normalized coordinates, number of boxes dropped)``.
    """
    if len(targets) == 0 or (y0, x0, height, width) == (0, 0, in_height, in_width):
        return targets, 0
    scale = np.array([in_height / height, in_width / width] * 2, np.float64)
    offset = np.array([y0 / height, x0 / width] * 2, np.float64)
    moved = np.clip(targets.boxes.astype(np.float64) * scale - offset, 0.0, 1.0)
    keep = ((moved[:, 2] - moved[:, 0]) > min_size) & ((moved[:, 3] - moved[:, 1]) > min_size)
    kept = BoxTargets(moved[keep].astype(np.float32), targets.classes[keep], targets.ignore[keep])
    return kept, int((~keep).sum())


def center_crop(targets: BoxTargets, height: int, width: int, min_size: float = 1e-6):
    """:func:`crop` to the centred square of a ``height × width`` image (the preprocess
    ``crop`` step); returns ``(BoxTargets, number of boxes dropped)``."""
    top, left, side = center_crop_window(height, width)
    return crop(targets, height, width, top, left, side, side, min_size)


def flip_horizontal(targets: BoxTargets) -> BoxTargets:
    """Boxes of the left-right mirrored image: ``x -> 1 - x``, corners swapped."""
    b = targets.boxes
    flipped = np.stack([b[:, 0], 1.0 - b[:, 3], b[:, 2], 1.0 - b[:, 1]], axis=1)
    return BoxTargets(flipped.astype(np.float32), targets.classes, targets.ignore)


def flip_vertical(targets: BoxTargets) -> BoxTargets:
    """Boxes of the upside-down mirrored image: ``y -> 1 - y``, corners swapped."""
    b = targets.boxes
    flipped = np.stack([1.0 - b[:, 2], b[:, 1], 1.0 - b[:, 0], b[:, 3]], axis=1)
    return BoxTargets(flipped.astype(np.float32), targets.classes, targets.ignore)


def to_input_pixels(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boxes predicted on the crop of a ``height × width`` input -> that input's pixels.

    The inverse of :func:`center_crop` followed by a resize: normalized boxes of the square
    crop (stored order) become ``[x1, y1, x2, y2]`` pixels of the original input, clipped to it.
    """
    top, left, side = center_crop_window(height, width)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    xyxy = np.stack(
        [b[:, 1] * side + left, b[:, 0] * side + top, b[:, 3] * side + left, b[:, 2] * side + top],
        axis=1,
    )
    xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0, width)
    xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0, height)
    return xyxy.astype(np.float32)
