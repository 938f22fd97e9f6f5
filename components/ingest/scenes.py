"""Fashion-MNIST scenes: canvases of several real garments, with per-pixel masks and boxes.

The built-in data of the segmentation and detection pipelines, made offline and
deterministically from the real Fashion-MNIST IDX files. Each scene is a square gray canvas
(default 64×64, black like Fashion-MNIST's own background) holding 1–4 garments, each a real
28×28 Fashion-MNIST image resized by a seeded random scale and pasted at a seeded random
position. One generator gives both targets, so the two pipelines see the same scenes:

- **mask** ``(S, S) uint8``: 0 = background, ``label + 1`` (1–10) where a garment's resized
  pixel is above ``threshold``; a later garment covers an earlier one.
- **boxes** ``(k, 4) float32``: each garment's tight box around its pixels above
  ``threshold``, normalized ``[y_min, x_min, y_max, x_max]`` (pixel edges divided by S, so
  a box of rows 3..10 has ``y_min = 3/S``, ``y_max = 11/S``), with ``box_classes`` ``(k,)``
  = the Fashion-MNIST label 0–9 (no background class). Boxes are amodal: a garment partly
  covered by a later one keeps its whole box (only with ``max_overlap > 0``).

Splits never share a source garment: ``train`` scenes use Fashion-MNIST train images except
the last ``validation_share`` of them, ``validation`` scenes use that held-out tail, ``test``
scenes use only the test (``t10k``) images. Scene ``i`` of a split depends only on
``(seed, split, i)`` and the source images, not on how many scenes are asked for.

Example::

    from convflow.components.ingest.scenes import SceneParams, fashion_scenes

    s = fashion_scenes(SceneParams(train_scenes=100), "train")
    s.images.shape, s.masks.shape, s.boxes[0], s.box_classes[0]
    # (100, 64, 64, 1) (100, 64, 64) [[0.31 0.05 0.73 0.45] ...] [7 ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError, param
from convflow.components.ingest.idx import read_idx

BACKGROUND = 0  # mask value of pixels no garment covers
GARMENT = 28  # Fashion-MNIST images are 28×28
SCENE_SPLITS = ("train", "validation", "test")
_SPLIT_IDS = {s: i for i, s in enumerate(SCENE_SPLITS)}
_FILES = {"train": "train", "validation": "train", "test": "t10k"}


@dataclass(frozen=True)
class SceneParams:
    """How to build Fashion-MNIST scenes (config section ``ingest.scenes``).

    Attributes:
        idx_dir: folder with Fashion-MNIST's four IDX files (``.gz`` or plain).
        train_scenes: scenes in the train split.
        validation_scenes: scenes in the validation split.
        test_scenes: scenes in the test split.
        size: canvas side S in pixels.
        min_objects: fewest garments per scene.
        max_objects: most garments per scene (fewer when no free place is found).
        min_scale: smallest garment size as a multiple of 28 px.
        max_scale: largest garment size as a multiple of 28 px.
        threshold: a resized garment pixel above this (0–255) is the garment's.
        max_overlap: largest IoU allowed between a new garment's box and an earlier one's
            (0: garments never overlap).
        validation_share: share of the Fashion-MNIST train images held out for validation
            scenes (the tail of the file).
        seed: seed of everything random in the scenes.
    """

    idx_dir: str = param("/usr/share/datasets/fashion-mnist")
    train_scenes: int = param(8000, min=1)
    validation_scenes: int = param(500, min=1)
    test_scenes: int = param(1000, min=1)
    size: int = param(64, min=GARMENT)
    min_objects: int = param(1, min=1)
    max_objects: int = param(4, min=1)
    min_scale: float = param(0.75, min_exclusive=0.0)
    max_scale: float = param(1.25, min_exclusive=0.0)
    threshold: int = param(32, min=0, max=254)
    max_overlap: float = param(0.0, min=0.0, max=1.0)
    validation_share: float = param(0.1, min_exclusive=0.0, max=0.5)
    seed: int = param(0, min=0)

    def __post_init__(self):
        if self.max_objects < self.min_objects:
            raise ValueError(
                f"scenes.max_objects={self.max_objects} < scenes.min_objects={self.min_objects}"
            )
        if self.max_scale < self.min_scale:
            raise ValueError(
                f"scenes.max_scale={self.max_scale} < scenes.min_scale={self.min_scale}"
            )
        if round(GARMENT * self.max_scale) > self.size:
            raise ValueError(
                f"scenes.max_scale={self.max_scale} makes garments of "
                f"{round(GARMENT * self.max_scale)} px, larger than scenes.size={self.size}"
            )

    def count(self, split: str) -> int:
        return {"train": self.train_scenes, "validation": self.validation_scenes}.get(
            split, self.test_scenes
        )


@dataclass(frozen=True)
class Scenes:
    """N scenes of one split.

    Attributes:
        images: ``(N, S, S, 1) uint8`` canvases.
        masks: ``(N, S, S) uint8``; 0 background, Fashion-MNIST label + 1 on garments.
        boxes: N arrays ``(k_i, 4) float32``, normalized ``[y_min, x_min, y_max, x_max]``.
        box_classes: N arrays ``(k_i,) int64``, the Fashion-MNIST label (0–9) of each box.
        sources: N arrays ``(k_i,) int64``, index of each garment in the split's source
            images (for lineage and tests).
    """

    images: np.ndarray
    masks: np.ndarray
    boxes: list[np.ndarray]
    box_classes: list[np.ndarray]
    sources: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes a 2-D gray image to ``size × size`` (bilinear, half-pixel centres).

    Args:
        image: ``(H, W)`` array.
        size: output side in pixels.

    Returns:
        ``(size, size) float32``.
    """

    def axis(n_in: int):
        pos = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, wy = axis(image.shape[0])
    x0, x1, wx = axis(image.shape[1])
    im = image.astype(np.float32)
    top = im[y0][:, x0] * (1 - wx) + im[y0][:, x1] * wx
    bottom = im[y1][:, x0] * (1 - wx) + im[y1][:, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a (n, 4)`` and ``b (m, 4)``, both ``[y0, x0, y1, x1]``.

    Returns:
        ``(n, m)`` IoU matrix (0 where both boxes have no area).
    """
    a, b = a[:, None, :].astype(np.float64), b[None, :, :].astype(np.float64)
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_h * inter_w
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _place(rng, patch_fg, boxes, p: SceneParams, tries: int = 30):
    """A top-left corner where the patch's box overlaps no earlier box by more than allowed.

    Returns:
        ``(y, x, pixel box)`` of the first of ``tries`` seeded draws that fits, or None.
    """
    rows, cols = np.flatnonzero(patch_fg.any(1)), np.flatnonzero(patch_fg.any(0))
    tight = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1])
    corners = rng.integers(0, p.size - patch_fg.shape[0] + 1, size=(tries, 2))
    candidates = tight + np.concatenate([corners, corners], axis=1)
    pick = 0
    if boxes:
        fits = np.flatnonzero(box_iou(candidates, np.array(boxes)).max(1) <= p.max_overlap)
        if not len(fits):
            return None
        pick = fits[0]
    return int(corners[pick, 0]), int(corners[pick, 1]), candidates[pick]


def compose_scene(rng, images: np.ndarray, labels: np.ndarray, p: SceneParams):
    """Builds one scene from a pool of 28×28 garments.

    Args:
        rng: a ``numpy.random.Generator``; everything random is drawn from it.
        images: ``(M, 28, 28)`` or ``(M, 28, 28, 1) uint8`` source garments.
        labels: ``(M,)`` their Fashion-MNIST labels 0–9.
        p: the scene settings.

    Returns:
        ``(image (S, S, 1) uint8, mask (S, S) uint8, boxes (k, 4) float32 normalized,
        box classes (k,), source indices (k,))``.
    """
    s = p.size
    canvas = np.zeros((s, s), np.float32)
    mask = np.zeros((s, s), np.uint8)
    boxes, classes, sources = [], [], []
    for _ in range(int(rng.integers(p.min_objects, p.max_objects + 1))):
        index = int(rng.integers(len(images)))
        side = round(GARMENT * rng.uniform(p.min_scale, p.max_scale))
        patch = resize_bilinear(images[index].reshape(GARMENT, GARMENT), side)
        fg = patch > p.threshold
        if not fg.any():
            continue
        spot = _place(rng, fg, boxes, p)
        if spot is None:
            continue
        y, x, box = spot
        region = (slice(y, y + side), slice(x, x + side))
        # Soft edges below the threshold blend in; the garment's own pixels cover what is under.
        canvas[region] = np.where(fg, patch, np.maximum(canvas[region], patch))
        mask[region][fg] = labels[index] + 1
        boxes.append(box)
        classes.append(int(labels[index]))
        sources.append(index)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)[..., None]
    norm = np.asarray(boxes, np.float32).reshape(-1, 4) / s
    return image, mask, norm, np.asarray(classes, np.int64), np.asarray(sources, np.int64)


def compose_scenes(
    images: np.ndarray, labels: np.ndarray, count: int, p: SceneParams, split: str
) -> Scenes:
    """``count`` scenes of ``split`` from a given pool of garments (see the module doc).

    Scene ``i`` uses its own generator seeded by ``(p.seed, split, i)``.

    Raises:
        ValueError: for an unknown split or an empty pool.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown scene split {split!r}; expected one of {SCENE_SPLITS}")
    if not len(images):
        raise ValueError(f"no source garments for the {split} scenes")
    out = [
        compose_scene(np.random.default_rng((p.seed, _SPLIT_IDS[split], i)), images, labels, p)
        for i in range(count)
    ]
    ims, masks, boxes, classes, sources = zip(*out, strict=True) if out else ([],) * 5
    s = p.size
    return Scenes(
        images=np.asarray(ims, np.uint8).reshape(count, s, s, 1),
        masks=np.asarray(masks, np.uint8).reshape(count, s, s),
        boxes=list(boxes),
        box_classes=list(classes),
        sources=list(sources),
    )


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise ComponentError(
        f"Fashion-MNIST file {stem}(.gz) not found in ingest.scenes.idx_dir={str(folder)!r}; "
        "install dataset-fashion-mnist or point idx_dir at the IDX files"
    )


def source_garments(p: SceneParams, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST images ``(M, 28, 28) uint8`` and labels a split's scenes draw from."""
    folder, kind = Path(p.idx_dir), _FILES[split]
    images, _ = read_idx(_idx_file(folder, f"{kind}-images-idx3-ubyte"))
    labels, _ = read_idx(_idx_file(folder, f"{kind}-labels-idx1-ubyte"))
    n = min(len(images), len(labels))
    images, labels = images[:n], labels[:n].astype(np.int64)
    if split == "test":
        return images, labels
    cut = n - round(n * p.validation_share)
    return (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])


def fashion_scenes(p: SceneParams, split: str) -> Scenes:
    """The scenes of one split, built from the real Fashion-MNIST IDX files.

    Args:
        p: the scene settings (counts per split, canvas size, garments, seed).
        split: "train", "validation" or "test".

    Returns:
        ``p.count(split)`` scenes (see :class:`Scenes`).

    Raises:
        ComponentError: when the IDX files are missing or unreadable.
        ValueError: for an unknown split.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown scene split {split!r}; expected one of {SCENE_SPLITS}")
    images, labels = source_garments(p, split)
    return compose_scenes(images, labels, p.count(split), p, split)
