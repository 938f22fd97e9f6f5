"""Ingest for tasks whose records carry a mask: the scenes and the mask sources, split.

Sources (``ingest.source``):

- ``scenes``: Fashion-MNIST scenes (:mod:`components.ingest.scenes`), classes
  ``background`` + the ten garments (mask value = garment label + 1); its own disjoint
  train/validation/test splits.
- ``mask_folder``: ``ingest.folder`` holds ``images/`` + ``masks/`` (optionally under
  ``train/``, ``val/``, ``test/``), :func:`components.ingest.masks.read_folder`.
- ``voc_segmentation``: ``ingest.folder`` is a Pascal VOC root
  (:func:`components.ingest.masks.read_voc`).
- ``tfds_segmentation``: a TFDS dataset with a mask feature in a prepared
  ``ingest.tfds_data_dir`` (:mod:`components.ingest.tfds_masks`).

A source without a test split gives ``test_fraction`` of its pairs to test, and one without
a validation split gives ``validation_fraction`` of train to validation (seeded shuffles;
masks have no single label to stratify on).
"""

from __future__ import annotations

from convflow.components.images import choose_channels, to_channels
from convflow.components.ingest import masks, split, tfds_masks
from convflow.components.ingest.scenes import SCENE_SPLITS, fashion_scenes

MASK_SOURCES = ("scenes", "mask_folder", "voc_segmentation", "tfds_segmentation")
BACKGROUND = "background"


def scene_class_names(garments) -> list[str]:
    """Mask class names of the scenes: background, then the garments by label."""
    return [BACKGROUND, *garments]


def read(p, progress):
    """Reads ``p.source`` (one of :data:`MASK_SOURCES`).

    Args:
        p: the ingest params (source, folder, class_names, scenes, tfds_*, channels).
        progress: a tqdm-like wrapper.

    Returns:
        ``(class names, {split: (images, masks)}, rejected)``; images and masks are lists
        (sizes may differ) or stacked arrays; split ``all`` when the source is unsplit.
    """
    if p.source == "scenes":
        splits = {}
        for split in progress(SCENE_SPLITS, desc="compose scenes"):
            s = fashion_scenes(p.scenes, split)
            splits[split] = (s.images, s.masks)
        return scene_class_names(p.idx.class_names), splits, []
    if p.source == "mask_folder":
        names, records, rejected = masks.read_folder(p.folder, p.class_names, progress)
    elif p.source == "voc_segmentation":
        names, records, rejected = masks.read_voc(p.folder, p.class_names, progress)
    else:
        names, records, rejected = tfds_masks.read(
            p.tfds_name, p.tfds_data_dir, p.tfds_download, p.class_names, progress,
            mask_key=p.tfds_mask_key,
        )  # fmt: skip
    counts = [r.image.shape[-1] for rs in records.values() for r in rs]
    channels = choose_channels(counts, p.channels)
    splits = {
        split: ([to_channels(r.image, channels) for r in rs], [r.mask for r in rs])
        for split, rs in records.items()
    }
    return names, splits, rejected


def carve(splits: dict, p) -> dict:
    """train/validation/test from what the source gave (see the module doc): masks are
    stacked with their images when every image of a split has one shape."""
    return split.carve(splits, p, stack_targets=True)
