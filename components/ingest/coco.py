"""COCO object-detection annotations: an instances JSON plus an image folder.

``bbox`` is ``[x, y, w, h]`` in pixels from the top-left corner; ``iscrowd: 1`` boxes are kept
with ``ignore=True`` (pycocotools' crowd regions at evaluation, never training targets).
Class indices follow the category ids in ascending order (COCO's ids have gaps), or the
configured class names, matched by category name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.boxes import BadBox, BoxTargets, from_coco
from convflow.components.ingest.box_records import BoxRecord, decode_image, rejection


def _load(path: Path) -> dict:
    if not path.is_file():
        raise ComponentError(f"COCO annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ComponentError(f"{path}: not a readable COCO JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ComponentError(f"{path}: no 'images' list; expected a COCO instances file")
    return data


def _categories(data: dict, class_names: list[str] | None) -> tuple[list[str], dict]:
    """(class names, category id -> class index); unknown names map to None."""
    cats = sorted(data.get("categories") or [], key=lambda c: c.get("id", 0))
    names = list(class_names) if class_names else [str(c.get("name")) for c in cats]
    index = {}
    for c in cats:
        name = str(c.get("name"))
        index[c.get("id")] = names.index(name) if name in names else None
    return names, index


def _annotation(ann, image_info, cat_index) -> tuple[np.ndarray, int, bool]:
    """One annotation -> (box, class, ignore); raises BadBox with the reason."""
    if ann.get("category_id") not in cat_index:
        raise BadBox(f"unknown class: category_id {ann.get('category_id')!r}")
    cls = cat_index[ann["category_id"]]
    if cls is None:
        raise BadBox(f"unknown class: category_id {ann['category_id']} is not in class_names")
    if "bbox" not in ann:
        raise BadBox(f"unreadable annotation {ann.get('id')!r}: no bbox")
    box = from_coco(ann["bbox"], image_info["height"], image_info["width"])
    return box, cls, bool(ann.get("iscrowd", 0))


def read(
    annotations: str | Path, images_dir: str | Path, class_names: list[str] | None = None
) -> tuple[list[str], list[BoxRecord], list[dict]]:
    """Reads one COCO split.

    Args:
        annotations: the instances JSON.
        images_dir: the folder its ``file_name`` entries are relative to.
        class_names: fixes the class order; categories named otherwise are unknown classes.

    Returns:
        ``(class names, records, rejected)``; an image with no annotations is a negative.

    Raises:
        ComponentError: the JSON itself cannot be read.
    """
    annotations, images_dir = Path(annotations), Path(images_dir)
    data = _load(annotations)
    names, cat_index = _categories(data, class_names)
    images = {im.get("id"): im for im in data["images"] if isinstance(im, dict)}
    by_image, rejected = defaultdict(list), []
    for ann in data.get("annotations") or []:
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            where = ann.get("image_id") if isinstance(ann, dict) else ann
            rejected.append(
                rejection(annotations, f"unreadable annotation: image_id {where!r} not in images")
            )
            continue
        by_image[ann["image_id"]].append(ann)
    records = []
    for image_id, info in images.items():
        path = images_dir / str(info.get("file_name", ""))
        image, reason = decode_image(path)
        if image is None:
            rejected.append(rejection(path, reason))
            continue
        # The decoded size wins over the JSON's: boxes are checked against the real pixels.
        info = {**info, "height": image.shape[0], "width": image.shape[1]}
        try:
            parts = [_annotation(a, info, cat_index) for a in by_image.get(image_id, [])]
        except BadBox as e:
            rejected.append(rejection(path, str(e)))
            continue
        targets = (
            BoxTargets.of(*(np.array(x) for x in zip(*parts, strict=True)))
            if parts
            else BoxTargets.empty()
        )
        records.append(BoxRecord(image, targets, str(path)))
    return names, records, rejected
