"""Class-index masks: geometry (crop, nearest-neighbour resize) and colours (palette, overlay).

A mask is ``(H, W)`` or ``(N, H, W)`` uint8, one class index per pixel, 255 = ignore. It moves
with its image, but never by interpolation: a resize picks, for every output pixel, the mask
value at the nearest input pixel, so no value appears that was not there (a bilinear blend of
classes 2 and 4 would invent a 3). Sampling is at pixel centres, as the image resize does, so
image and mask stay aligned.

Colours follow Pascal VOC: class ``i`` gets the VOC colour map's colour ``i`` (0 black), the
ignore index 255 its cream ``(224, 224, 192)``. Only NumPy here: predict and the plots use
it without Keras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IGNORE_INDEX = 255
IGNORE_COLOUR = (224, 224, 192)


def center_square_crop(masks: np.ndarray) -> np.ndarray:
    """The centred ``min(H, W)`` square of ``(..., H, W)`` masks, as the image crop takes it."""
    h, w = masks.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return masks[..., top : top + side, left : left + side]


def resize_nearest(masks: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Nearest-neighbour resize of ``(..., H, W)`` masks to ``height × width``.

    Output pixel ``i`` takes input pixel ``floor((i + 0.5) · H / height)`` (centre sampling).

    Returns:
        masks of shape ``(..., height, width)``, same dtype; only values of the input.
    """
    width = height if width is None else width
    h, w = masks.shape[-2:]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return masks[..., rows[:, None], cols[None, :]]


def palette(num_classes: int = 256) -> np.ndarray:
    """Pascal VOC's colour map: ``(num_classes, 3) uint8``, index 255 the ignore colour.

    Colour ``i`` spreads the bits of ``i`` over R, G, B from the high bit down (VOC devkit).
    """
    colours = np.zeros((max(num_classes, 1), 3), np.uint8)
    for i in range(len(colours)):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours[i] = (r, g, b)
    if num_classes > IGNORE_INDEX:
        colours[IGNORE_INDEX] = IGNORE_COLOUR
    return colours[:num_classes]


def colorize(mask: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` class indices -> ``(..., H, W, 3) uint8`` palette colours."""
    return palette(256)[np.asarray(mask, np.uint8)]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The image in gray tones with non-background classes tinted by their colour.

    Args:
        image: ``(H, W, C) uint8``, C = 1 or 3.
        mask: ``(H, W)`` class indices; 0 (background) and 255 (ignore) are not tinted.
        alpha: weight of the class colour.

    Returns:
        ``(H, W, 3) uint8``.
    """
    image = np.asarray(image)
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    tint = (mask != 0) & (mask != IGNORE_INDEX)
    out = rgb.astype(np.float32)
    out[tint] = (1 - alpha) * out[tint] + alpha * colorize(mask)[tint]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def save_palette_png(mask: np.ndarray, path: str | Path) -> Path:
    """Writes ``(H, W)`` class indices as a palette PNG (the pixel value is the class)."""
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    image.putpalette(palette(256).reshape(-1).tolist())
    image.save(path)
    return Path(path)


def class_shares(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of pixels of each class (ignore pixels left out); ``(num_classes,)`` float."""
    values = np.asarray(mask).reshape(-1)
    values = values[values != IGNORE_INDEX]
    counts = np.bincount(values, minlength=num_classes)[:num_classes]
    return counts / max(len(values), 1)
