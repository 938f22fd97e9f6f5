"""Pascal VOC detection layout: ``Annotations/<id>.xml`` and ``JPEGImages/<filename>``.

Boxes are ``bndbox`` ``xmin ymin xmax ymax``, 1-based inclusive pixel indices; ``difficult``
boxes are kept with ``ignore=True`` (the VOC protocol neither rewards nor penalizes them).
Splits come from ``ImageSets/Main/{train,val,test}.txt`` when present, else all XML files
form one unsplit set.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.boxes import BadBox, BoxTargets, from_voc
from convflow.components.ingest.box_records import (
    SPLIT_ALIASES,
    BoxRecord,
    class_index,
    decode_image,
    rejection,
)

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip


def _objects(root: ET.Element, names: list[str]):
    """Yields (xmin, ymin, xmax, ymax, class, difficult); raises BadBox with the reason."""
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        cls = class_index(names, name)
        if cls is None:
            raise BadBox(f"unknown class {name!r}; expected one of the class names")
        bnd = obj.find("bndbox")
        try:
            coords = [float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            raise BadBox(f"unreadable annotation: object {name!r} has no numeric bndbox") from None
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        yield (*coords, cls, difficult)


def read_one(xml_path: Path, images_dir: Path, names: list[str]):
    """One annotation file -> ``(BoxRecord, None)`` or ``(None, rejected entry)``."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as e:
        return None, rejection(xml_path, f"unreadable annotation ({e})")
    filename = (root.findtext("filename") or f"{xml_path.stem}.jpg").strip()
    image, reason = decode_image(images_dir / filename)
    if image is None:
        return None, rejection(xml_path, reason)
    height, width = image.shape[:2]
    try:
        objects = list(_objects(root, names))
        boxes = [from_voc(*o[:4], height=height, width=width) for o in objects]
    except BadBox as e:
        return None, rejection(xml_path, str(e))
    if not objects:
        return BoxRecord(image, BoxTargets.empty(), str(images_dir / filename)), None
    classes = np.array([o[4] for o in objects])
    ignore = np.array([o[5] for o in objects])
    return BoxRecord(image, BoxTargets.of(boxes, classes, ignore), str(images_dir / filename)), None


def _split_ids(root: Path) -> dict[str, list[str]]:
    sets = root / "ImageSets" / "Main"
    found = {}
    for name, split in SPLIT_ALIASES.items():
        path = sets / f"{name}.txt"
        if path.is_file():
            ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
            found.setdefault(split, []).extend(ids)
    if found:
        return found
    return {"all": sorted(p.stem for p in (root / "Annotations").glob("*.xml"))}


def read(root: str | Path, class_names: list[str] | None = None):
    """Reads a VOC-layout folder.

    Args:
        root: the folder holding ``Annotations/`` and ``JPEGImages/``.
        class_names: the class order; default the 20 Pascal VOC classes.

    Returns:
        ``(class names, {split: [BoxRecord]}, rejected)``.

    Raises:
        ComponentError: ``root`` has no ``Annotations/`` folder.
    """
    root = Path(root)
    names = list(class_names or VOC_CLASSES)
    if not (root / "Annotations").is_dir():
        raise ComponentError(f"{root}: no Annotations/ folder; expected the Pascal VOC layout")
    splits, rejected = {}, []
    for split, ids in _split_ids(root).items():
        records = []
        for stem in ids:
            xml_path = root / "Annotations" / f"{stem}.xml"
            if not xml_path.is_file():
                rejected.append(
                    rejection(xml_path, "annotation file missing (listed in ImageSets)")
                )
                continue
            record, bad = read_one(xml_path, root / "JPEGImages", names)
            if bad:
                rejected.append(bad)
            else:
                records.append(record)
        splits[split] = records
    return names, splits, rejected
