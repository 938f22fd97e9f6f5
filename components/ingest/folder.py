"""Image folders: ``root/<class>/*.png`` or ``root/{train,test}/<class>/*``.

Every file is accounted for: decoded, or rejected with its path and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp"}


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def layout(root: str | Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Finds class names and the files of each split present (``all`` when not split)."""
    root = Path(root)
    if not root.is_dir():
        raise ComponentError(f"image folder not found: {root}")
    levels = {p.name for p in _class_dirs(root)}
    split_roots = (
        {s: root / s for s in ("train", "test")} if {"train", "test"} <= levels else {"all": root}
    )
    class_names = sorted({p.name for r in split_roots.values() for p in _class_dirs(r)})
    if not class_names:
        raise ComponentError(f"{root} has no class subfolders; expected {root}/<class>/<image>")
    index = {c: i for i, c in enumerate(class_names)}
    files = {}
    for split, sroot in split_roots.items():
        files[split] = [
            (f, index[cdir.name])
            for cdir in _class_dirs(sroot)
            for f in sorted(cdir.rglob("*"))
            if f.is_file() and not f.name.startswith(".")
        ]
    return class_names, files


def decode(path: Path) -> np.ndarray:
    """Decodes one file to H×W×C uint8 (C is 1 or 3); raises ValueError with the reason."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in EXTENSIONS:
        raise ValueError(f"not an image file (extension {path.suffix or 'none'})")
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        with Image.open(path) as im:
            im.load()  # forces a full decode, so truncation shows here
            if im.mode in ("L", "1", "I;16", "I", "F"):
                arr = np.asarray(im.convert("L"))[..., None]
            else:
                arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"undecodable image ({e})") from None
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image has no pixels (shape {arr.shape})")
    return arr


def to_channels(images: list[np.ndarray], channels: str) -> list[np.ndarray]:
    """Brings all images to one channel count ("auto": RGB if any image has colour)."""
    want = {"grayscale": 1, "rgb": 3}.get(channels)
    if want is None:
        want = 3 if any(im.shape[-1] == 3 for im in images) else 1
    out = []
    for im in images:
        if im.shape[-1] == want:
            out.append(im)
        elif want == 3:
            out.append(np.repeat(im, 3, axis=-1))
        else:  # ITU-R 601 luma, as PIL's convert("L")
            luma = im.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            out.append(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None])
    return out


def read_split(
    files: list[tuple[Path, int]], progress
) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    images, labels, rejected = [], [], []
    for path, label in progress(files, total=len(files), desc="decode images"):
        try:
            images.append(decode(path))
            labels.append(label)
        except ValueError as e:
            rejected.append({"source": str(path), "reason": str(e)})
    return images, np.asarray(labels, np.int64), rejected
