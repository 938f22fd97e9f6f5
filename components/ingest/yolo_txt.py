"""YOLO txt layout (Darknet / Ultralytics): ``images/[split/]<stem>.<ext>`` and
``labels/[split/]<stem>.txt``, one ``class cx cy w h`` line per box (normalized to [0, 1]).

An image without a label file is a negative (the format's own convention); a label file
without an image is rejected. Class names come from ``classes.txt`` in the root (one per
line) or from the config.
"""

from __future__ import annotations

from pathlib import Path

from convflow.components.base import ComponentError
from convflow.components.boxes import BadBox, BoxTargets, from_yolo
from convflow.components.images import EXTENSIONS
from convflow.components.ingest.box_records import (
    SPLIT_ALIASES,
    BoxRecord,
    decode_image,
    read_class_names,
    rejection,
)


def parse_labels(text: str, names: list[str], height: int, width: int) -> BoxTargets:
    """The lines of one label file -> boxes; raises BadBox naming the line and what is wrong."""
    boxes, classes = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 5:
                raise ValueError
            cls = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise BadBox(f"unreadable annotation line {n}: {line.strip()!r}") from None
        if not 0 <= cls < len(names):
            raise BadBox(f"unknown class {cls} on line {n}; {len(names)} class names")
        try:
            boxes.append(from_yolo(cx, cy, w, h, height, width))
        except BadBox as e:
            raise BadBox(f"line {n}: {e}") from None
        classes.append(cls)
    return BoxTargets.of(boxes, classes) if boxes else BoxTargets.empty()


def _split_dirs(root: Path) -> dict[str, tuple[Path, Path]]:
    images, labels = root / "images", root / "labels"
    subdirs = {
        SPLIT_ALIASES[d.name]: (d, labels / d.name)
        for d in sorted(images.iterdir())
        if d.is_dir() and d.name in SPLIT_ALIASES
    }
    return subdirs or {"all": (images, labels)}


def read_split(images_dir: Path, labels_dir: Path, names: list[str]):
    """``([BoxRecord], rejected)`` for one images/labels folder pair."""
    image_files = {
        p.stem: p
        for p in sorted(images_dir.iterdir())
        if p.is_file() and p.suffix.lower() in EXTENSIONS
    }
    label_files = sorted(labels_dir.glob("*.txt")) if labels_dir.is_dir() else []
    rejected = [
        rejection(lf, f"image missing: no {images_dir}/{lf.stem}.<ext> for this label file")
        for lf in label_files
        if lf.stem not in image_files
    ]
    records = []
    for stem, path in image_files.items():
        image, reason = decode_image(path)
        if image is None:
            rejected.append(rejection(path, reason))
            continue
        label = labels_dir / f"{stem}.txt"
        try:
            text = label.read_text(encoding="utf-8") if label.is_file() else ""
            targets = parse_labels(text, names, *image.shape[:2])
        except UnicodeDecodeError as e:
            rejected.append(rejection(label, f"unreadable annotation ({e})"))
            continue
        except BadBox as e:
            rejected.append(rejection(label, str(e)))
            continue
        records.append(BoxRecord(image, targets, str(path)))
    return records, rejected


def read(root: str | Path, class_names: list[str] | None = None):
    """Reads a YOLO-txt folder.

    Returns:
        ``(class names, {split: [BoxRecord]}, rejected)``.

    Raises:
        ComponentError: no ``images/`` folder, or no class names (config or classes.txt).
    """
    root = Path(root)
    if not (root / "images").is_dir():
        raise ComponentError(f"{root}: no images/ folder; expected images/ and labels/")
    names = list(class_names or [])
    if not names and (root / "classes.txt").is_file():
        names = read_class_names(root / "classes.txt")
    if not names:
        raise ComponentError(
            f"{root}: no class names; write {root}/classes.txt (one per line) or set "
            "ingest.class_names"
        )
    splits, rejected = {}, []
    for split, (images_dir, labels_dir) in _split_dirs(root).items():
        records, bad = read_split(images_dir, labels_dir, names)
        splits[split] = records
        rejected += bad
    return names, splits, rejected
