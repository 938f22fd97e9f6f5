"""Ingest for tasks whose records carry boxes: the scenes and the box sources, split.

Sources (``ingest.source``):

- ``scenes``: Fashion-MNIST scenes (:mod:`components.ingest.scenes`, the same generator as
  segmentation), each garment's tight box with its Fashion-MNIST class (no background
  class); its own disjoint train/validation/test splits.
- ``coco``: ``ingest.folder`` holds ``annotations/instances_<split>.json`` and the images of
  each split in ``<split>/`` or ``images/<split>/`` (``<split>`` one of train, val,
  validation, test; COCO 2017's ``train2017`` names work too), or one
  ``annotations/instances.json`` with ``images/`` (unsplit).
- ``voc_detection``: ``ingest.folder`` is a Pascal VOC root (:mod:`components.ingest.voc`).
- ``yolo_txt``: ``ingest.folder`` holds ``images/`` and ``labels/`` (:mod:`.yolo_txt`).

A source without a test split gives ``test_fraction`` of its images to test, and one without
a validation split gives ``validation_fraction`` of train to validation (seeded shuffles).
Records come back as :class:`BoxTargets` per image, stored convention (``components.boxes``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.boxes import BoxTargets
from convflow.components.images import choose_channels, to_channels
from convflow.components.ingest import coco, voc, yolo_txt
from convflow.components.ingest.box_records import SPLIT_ALIASES
from convflow.components.ingest.scenes import SCENE_SPLITS, fashion_scenes

BOX_SOURCES = ("scenes", "coco", "voc_detection", "yolo_txt")


def _coco_splits(root: Path) -> dict[str, tuple[Path, Path]]:
    """split -> (instances JSON, image folder) of a COCO-layout folder."""
    found = {}
    for ann in sorted((root / "annotations").glob("instances*.json")):
        tag = ann.stem.removeprefix("instances").lstrip("_")
        name = tag.rstrip("0123456789")  # train2017 -> train
        if not tag:
            images = root / "images"
            found["all"] = (ann, images)
            continue
        if name not in SPLIT_ALIASES:
            continue
        images = next(
            (d for d in (root / tag, root / "images" / tag, root / "images" / name) if d.is_dir()),
            root / "images" / tag,
        )
        found[SPLIT_ALIASES[name]] = (ann, images)
    if not found:
        raise ComponentError(
            f"{root}: no annotations/instances*.json; expected the COCO layout "
            "(annotations/instances_train.json + train/ images, ...)"
        )
    return found


def _read_coco(root: Path, class_names):
    splits, rejected, names = {}, [], class_names
    for split, (ann, images) in _coco_splits(root).items():
        # The first split fixes the class order, so every split indexes classes alike.
        names, records, bad = coco.read(ann, images, names)
        splits[split] = records
        rejected += bad
    return names, splits, rejected


def read(p, progress):
    """Reads ``p.source`` (one of :data:`BOX_SOURCES`).

    Args:
        p: the ingest params (source, folder, class_names, scenes, channels).
        progress: a tqdm-like wrapper.

    Returns:
        ``(class names, {split: (images, [BoxTargets])}, rejected)``; images are a stacked
        array when they share one shape, else a list; split ``all`` when unsplit.

    Raises:
        ComponentError: a source folder or its annotations cannot be used at all.
    """
    if p.source == "scenes":
        splits = {}
        for split in progress(SCENE_SPLITS, desc="compose scenes"):
            s = fashion_scenes(p.scenes, split)
            targets = [BoxTargets.of(b, c) for b, c in zip(s.boxes, s.box_classes, strict=True)]
            splits[split] = (s.images, targets)
        return list(p.idx.class_names), splits, []
    root = Path(p.folder)
    if not root.is_dir():
        raise ComponentError(f"ingest.folder={str(root)!r} is not a directory")
    names = list(p.class_names) if getattr(p, "class_names", None) else None
    if p.source == "coco":
        names, records, rejected = _read_coco(root, names)
    elif p.source == "voc_detection":
        names, records, rejected = voc.read(root, names)
    else:
        names, records, rejected = yolo_txt.read(root, names)
    counts = [r.image.shape[-1] for rs in records.values() for r in rs]
    channels = choose_channels(counts, p.channels)
    splits = {
        split: ([to_channels(r.image, channels) for r in rs], [r.targets for r in rs])
        for split, rs in records.items()
    }
    return names, splits, rejected


def carve(splits: dict, p) -> dict:
    """train/validation/test from what the source gave (seeded shuffles; see module doc).

    Returns:
        ``{split: (images, [BoxTargets])}``; images stacked when one shape.
    """
    from convflow.components.ingest import split

    return split.carve(splits, p, stack_targets=False)


def box_histogram(targets, num_classes: int) -> list[int]:
    """Boxes per class (ignore boxes excluded), for the artifact's statistics."""
    counts = np.zeros(num_classes, np.int64)
    for t in targets:
        np.add.at(counts, t.classes[~t.ignore], 1)
    return counts.tolist()
