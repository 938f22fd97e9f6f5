"""Per-split statistics (a Beam CombineFn) and the raw / GCN / LCN sample grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
import numpy as np


@dataclass
class Moments:
    """Mergeable per-channel sums of one stage of one split (float64, so 70k images add exactly).

    Attributes:
        images: number of images.
        pixels: pixels per channel (images may differ in size before the resize).
        total, total_sq: per-channel sum and sum of squares.
        low, high: per-channel min and max.
        labels: label histogram.
    """

    images: int = 0
    pixels: int = 0
    total: np.ndarray | None = None
    total_sq: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def of(cls, images: np.ndarray, histogram: np.ndarray, num_classes: int) -> Moments:
        """Moments of one ``(N, H, W, C)`` batch, accumulated in float64 without a copy.

        ``histogram`` is the batch's per-class target count (Task.class_histogram).
        """
        labels = np.asarray(histogram, np.int64)
        if not images.size:
            return cls(labels=labels if labels.size else np.zeros(num_classes, np.int64))
        axes = (0, 1, 2)
        return cls(
            images=len(images),
            pixels=images.size // images.shape[-1],
            total=images.sum(axis=axes, dtype=np.float64),
            total_sq=np.einsum("nhwc,nhwc->c", images, images, dtype=np.float64),
            low=images.min(axis=axes).astype(np.float64),
            high=images.max(axis=axes).astype(np.float64),
            labels=labels,
        )

    def merge(self, other: Moments) -> Moments:
        if other.total is None:
            return Moments(
                self.images,
                self.pixels,
                self.total,
                self.total_sq,
                self.low,
                self.high,
                _add(self.labels, other.labels),
            )
        if self.total is None:
            return other.merge(self)
        return Moments(
            images=self.images + other.images,
            pixels=self.pixels + other.pixels,
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
            low=np.minimum(self.low, other.low),
            high=np.maximum(self.high, other.high),
            labels=_add(self.labels, other.labels),
        )

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.pixels

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.total_sq / self.pixels - np.square(self.mean), 0.0))

    def to_json(self) -> dict:
        """count, per-channel mean/std/min/max and the label histogram, as plain JSON."""
        if self.total is None:
            return {"count": 0, "label_histogram": self.labels.tolist()}
        return {
            "count": self.images,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "min": self.low.tolist(),
            "max": self.high.tolist(),
            "label_histogram": self.labels.tolist(),
        }


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))) + np.pad(b, (0, n - len(b)))


class MergeMoments(beam.CombineFn):
    """Combines ``(origin, Moments)`` of many batches into one :class:`Moments` per key.

    Float addition is not associative, so the order of a merge shows in the last bits of the
    sums. Runners group and combine in different orders; merging in the order of the origins
    (split, shard, part) makes the result, and the artifact's fingerprint, the same on all.
    The accumulator is the list of per-batch moments (a few numbers each).
    """

    def create_accumulator(self):
        return []

    def add_input(self, acc, origin_moments):
        acc.append(origin_moments)
        return acc

    def merge_accumulators(self, accs):
        return [item for acc in accs for item in acc]

    def extract_output(self, acc):
        out = Moments()
        for _, moments in sorted(acc, key=lambda item: item[0]):
            out = out.merge(moments)
        return out


def plot_samples(columns: dict[str, np.ndarray], path: Path, zoom: int = 3) -> None:
    """Writes a grid: one row per image, one column per stage (like the book's GCN figure).

    Args:
        columns: title -> ``(N, H, W, C)`` float images; each tile is stretched to its own
            min..max, since GCN/LCN outputs are not in [0, 1].
        path: the PNG to write.
        zoom: pixels per image pixel (nearest neighbour), so 28 px digits stay legible.
    """
    from PIL import Image, ImageDraw

    titles = list(columns)
    n, h, w = next(iter(columns.values())).shape[:3]
    gap, head = 4, 14
    tile_h, tile_w = h * zoom, w * zoom
    grid = np.full((head + n * (tile_h + gap), len(titles) * (tile_w + gap), 3), 255, np.uint8)
    for col, title in enumerate(titles):
        for row, image in enumerate(np.asarray(columns[title], np.float64)):
            span = image.max() - image.min()
            image = (image - image.min()) / span if span > 0 else np.zeros_like(image)
            tile = np.repeat(np.repeat(image, zoom, 0), zoom, 1)
            top, left = head + row * (tile_h + gap), col * (tile_w + gap)
            grid[top : top + tile_h, left : left + tile_w] = np.round(tile * 255).astype(np.uint8)
    picture = Image.fromarray(grid)
    draw = ImageDraw.Draw(picture)
    for col, title in enumerate(titles):
        draw.text((col * (tile_w + gap) + 2, 1), title, fill=(0, 0, 0))
    picture.save(path)
