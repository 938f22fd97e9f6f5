"""Image/mask pairs from files: an image/mask folder or the Pascal VOC segmentation layout.

A mask is a PNG of class indices, one per pixel: a palette PNG (the index is the value, as
VOC's ``SegmentationClass``) or an 8-bit gray PNG. 255 is the ignore index (VOC's object
borders and "void"). Every pair is accounted for: a :class:`MaskRecord`, or a rejected entry
``{"source": path, "reason": ...}`` for an image without a mask, a mask without an image, a
mask whose size differs from its image, a mask value ≥ the number of classes (other than
255), or a file that does not decode. Ingest fails when the rejected share is above
``ingest.max_rejected_fraction``.

Layouts::

    folder/                          voc/
      classes.txt   (optional)         JPEGImages/<id>.jpg
      images/<stem>.png|jpg|...        SegmentationClass/<id>.png
      masks/<stem>.png                 ImageSets/Segmentation/{train,val,test}.txt
    or folder/{train,val,test}/{images,masks}/...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.images import decode_file

IGNORE_INDEX = 255  # Pascal VOC's "void": excluded from the loss and the metrics
SPLIT_ALIASES = {"train": "train", "val": "validation", "valid": "validation"} | {
    "validation": "validation",
    "test": "test",
}
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip


@dataclass
class MaskRecord:
    """One image and its mask.

    Attributes:
        image: ``(H, W, C) uint8``.
        mask: ``(H, W) uint8`` class indices; 255 = ignore.
        source: the image file (for rejections and plots).
    """

    image: np.ndarray
    mask: np.ndarray
    source: str


def decode_image(path: Path) -> np.ndarray:
    """The project's one image decoder (:func:`components.images.decode_file`).

    Raises:
        ValueError: (``ImageRejected``) the reason the file is not a usable picture.
    """
    return decode_file(path)


def decode_mask(path: Path) -> np.ndarray:
    """A palette or 8-bit gray PNG as ``(H, W) uint8`` class indices.

    Raises:
        ValueError: not a PNG, undecodable, or a mode that holds no class indices (RGB, 16-bit).
    """
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() != ".png":
        raise ValueError(f"mask is not a PNG (extension {path.suffix or 'none'})")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("P", "L"):
                return np.asarray(im, np.uint8).copy()  # palette PNG: the array is the index
            if mode == "1":
                return np.asarray(im, np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"undecodable mask ({e})") from None
    raise ValueError(f"mask has mode {mode}; expected a palette or 8-bit gray PNG of class indices")


def check_pair(image: np.ndarray, mask: np.ndarray, num_classes: int) -> str | None:
    """The reason an image/mask pair is unusable, or None when it is fine."""
    if image.shape[:2] != mask.shape:
        return (
            f"mask is {mask.shape[1]}×{mask.shape[0]} but its image is "
            f"{image.shape[1]}×{image.shape[0]} (W×H)"
        )
    values = np.unique(mask)
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    if len(bad):
        return (
            f"mask values {bad.tolist()[:5]} not in [0, {num_classes}) and not the ignore "
            f"index {IGNORE_INDEX}"
        )
    return None


def read_pair(image_path: Path, mask_path: Path, num_classes: int):
    """``(MaskRecord, None)`` or ``(None, rejected entry)`` for one image and its mask."""
    try:
        image = decode_image(image_path)
    except ValueError as e:
        return None, rejection(image_path, str(e))
    try:
        mask = decode_mask(mask_path)
    except ValueError as e:
        return None, rejection(mask_path, str(e))
    reason = check_pair(image, mask, num_classes)
    if reason:
        return None, rejection(mask_path, reason)
    return MaskRecord(image, mask, str(image_path)), None


def rejection(source, reason: str) -> dict:
    return {"source": str(source), "reason": reason}


def read_class_names(root: Path, configured: list[str] | None, default=None) -> list[str]:
    """Class names: the config's, else ``root/classes.txt`` (index = line), else ``default``.

    Raises:
        ComponentError: none given, or classes.txt with a blank line inside.
    """
    if configured:
        return list(configured)
    path = root / "classes.txt"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
        names = [line.strip() for line in lines]
        if not all(names):
            raise ComponentError(f"{path}: line {names.index('') + 1} is empty; one name a line")
        return names
    if default:
        return list(default)
    raise ComponentError(
        f"no class names for {root}: write {path} (one name a line, index = line) or set "
        "ingest.class_names"
    )


def _files(directory: Path) -> dict[str, list[Path]]:
    """Visible files of a directory by stem (several when extensions differ)."""
    found: dict[str, list[Path]] = {}
    if directory.is_dir():
        for f in sorted(directory.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                found.setdefault(f.stem, []).append(f)
    return found


def _read_folder_split(root: Path, num_classes: int, progress):
    images, masks = _files(root / "images"), _files(root / "masks")
    records, rejected = [], []
    for stem in progress(sorted(images.keys() | masks.keys()), desc=f"read {root.name}"):
        ims, ms = images.get(stem, []), masks.get(stem, [])
        if not ms:
            rejected += [rejection(p, f"image without a mask (no masks/{stem}.png)") for p in ims]
        elif not ims:
            rejected += [rejection(m, f"mask without an image (no images/{stem}.*)") for m in ms]
        elif len(ims) > 1 or len(ms) > 1:
            rejected.append(
                rejection(ims[0], f"stem {stem!r} is ambiguous: {[p.name for p in ims + ms]}")
            )
        else:
            record, bad = read_pair(ims[0], ms[0], num_classes)
            records += [record] if record else []
            rejected += [bad] if bad else []
    return records, rejected


def read_folder(root: str | Path, class_names: list[str] | None, progress):
    """An image/mask folder (see the module doc).

    Returns:
        ``(class names, {split: [MaskRecord]}, rejected)``; split ``all`` when unsplit.

    Raises:
        ComponentError: no such folder, no ``images/``+``masks/`` anywhere, no class names.
    """
    root = Path(root)
    if not root.is_dir():
        raise ComponentError(f"mask folder not found: {root}")
    names = read_class_names(root, class_names)
    split_dirs = {
        SPLIT_ALIASES[d.name]: d
        for d in sorted(root.iterdir())
        if d.is_dir() and d.name in SPLIT_ALIASES
    }
    if not split_dirs:
        split_dirs = {"all": root}
    if not any((d / "images").is_dir() or (d / "masks").is_dir() for d in split_dirs.values()):
        raise ComponentError(
            f"{root} has no images/ and masks/ folders; expected {root}/images/<stem>.png and "
            f"{root}/masks/<stem>.png (optionally under train/, val/, test/)"
        )
    splits, rejected = {}, []
    for split, directory in split_dirs.items():
        splits[split], bad = _read_folder_split(directory, len(names), progress)
        rejected += bad
    return names, splits, rejected


def _voc_image(images_dir: Path, image_id: str) -> Path | None:
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp"):
        if (images_dir / f"{image_id}{ext}").is_file():
            return images_dir / f"{image_id}{ext}"
    return None


def read_voc(root: str | Path, class_names: list[str] | None, progress):
    """The Pascal VOC segmentation layout (see the module doc); ids from the split lists.

    Returns:
        ``(class names (VOC's 21 by default), {split: [MaskRecord]}, rejected)``.

    Raises:
        ComponentError: no split lists under ``ImageSets/Segmentation``.
    """
    root = Path(root)
    lists = root / "ImageSets" / "Segmentation"
    present = {s: lists / f"{s}.txt" for s in ("train", "val", "test")}
    present = {s: f for s, f in present.items() if f.is_file()}
    if not present:
        raise ComponentError(
            f"no split lists in {lists}; expected train.txt and val.txt (one image id a line)"
        )
    names = read_class_names(root, class_names, default=VOC_CLASSES)
    splits, rejected = {}, []
    for split, listing in present.items():
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        records = []
        for image_id in progress(ids, desc=f"read {split}"):
            image = _voc_image(root / "JPEGImages", image_id)
            mask = root / "SegmentationClass" / f"{image_id}.png"
            if image is None:
                where = mask if mask.is_file() else listing
                what = "mask without an image" if mask.is_file() else "neither image nor mask"
                rejected.append(rejection(where, f"{what} (no JPEGImages/{image_id}.jpg)"))
            elif not mask.is_file():
                rejected.append(
                    rejection(image, f"image without a mask (no SegmentationClass/{image_id}.png)")
                )
            else:
                record, bad = read_pair(image, mask, len(names))
                records += [record] if record else []
                rejected += [bad] if bad else []
        splits[SPLIT_ALIASES[split]] = records
    return names, splits, rejected
