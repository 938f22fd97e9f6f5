"""Image folders: ``root/<class>/...`` or ``root/<split>/<class>/...``, read as people lay them out.

- Hidden things are skipped at every depth and counted by reason (``skipped``): dot-files
  and dot-folders, ``__MACOSX``, AppleDouble ``._*``, ``Thumbs.db``, ``desktop.ini``. A
  skipped folder counts once.
- Top-level folders named like splits (``ingest.split_names``, case-insensitive; default
  train / val, valid, validation, dev / test) make a split layout; otherwise every top-level
  folder is a class. Files below a class folder belong to it at any depth.
- A class folder with no usable image is not a class: it is reported and dropped.
- The same file content in two splits is leakage: counted, and warned about, dropped from
  the evaluation split or failed on, by ``ingest.on_duplicates``.

Every other file is accounted for: decoded, or rejected with its path and the reason.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.images import (
    EXTENSIONS,
    ImageRejected,
    choose_channels,
    decode_file,
    parse_colour,
    to_channels,
)

SYSTEM_FILES = {"thumbs.db": "thumbs_db", "desktop.ini": "desktop_ini"}
EXPECTED = "expected <root>/<class>/<image> or <root>/<split>/<class>/<image>"


def skip_reason(name: str) -> str | None:
    """Why a file or folder of this name is skipped (None: it is not)."""
    if name == "__MACOSX":
        return "macosx"
    if name.startswith("._"):
        return "appledouble"
    if name.startswith("."):
        return "hidden"
    return SYSTEM_FILES.get(name.lower())


def walk(root: Path, skipped: Counter) -> list[Path]:
    """Every visible file below ``root`` (sorted), pruning hidden folders at every depth."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in list(dirnames):
            if reason := skip_reason(d):
                skipped[reason] += 1
                dirnames.remove(d)
        for f in filenames:
            if reason := skip_reason(f):
                skipped[reason] += 1
            else:
                found.append(Path(dirpath) / f)
    return sorted(found)


def _visible_dirs(root: Path, skipped: Counter) -> tuple[list[Path], list[Path]]:
    """(visible subfolders, visible files) directly in ``root``; counts what it skips."""
    dirs, files = [], []
    for p in sorted(root.iterdir()):
        if reason := skip_reason(p.name):
            skipped[reason] += 1
        elif p.is_dir():
            dirs.append(p)
        else:
            files.append(p)
    return dirs, files


def _found(dirs: list[Path], files: list[Path], where: Path) -> str:
    names = ", ".join(d.name + "/" for d in dirs[:5]) + (", ..." if len(dirs) > 5 else "")
    return f"{where}: found {len(dirs)} folders ({names or 'none'}) and {len(files)} files"


def layout(
    root: str | Path, split_names: dict[str, str]
) -> tuple[list[str], dict[str, list[tuple[Path, int]]], Counter]:
    """Finds class names and the files of each split (``all`` when the folder is not split).

    Returns:
        (class names sorted, {split: [(file, class index)]}, skipped counts by reason).

    Raises:
        ComponentError: one line saying what was found and what is expected.
    """
    root = Path(root)
    if not root.is_dir():
        raise ComponentError(f"image folder not found: {root}; set ingest.folder")
    skipped: Counter = Counter()
    dirs, files = _visible_dirs(root, skipped)
    names = {k.lower(): v for k, v in split_names.items()}
    as_split = {d: names[d.name.lower()] for d in dirs if d.name.lower() in names}
    if as_split and len(as_split) < len(dirs):
        others = [d.name for d in dirs if d not in as_split]
        raise ComponentError(
            f"{_found(dirs, files, root)}: split folders ({', '.join(d.name for d in as_split)}) "
            f"next to other folders ({', '.join(others)}); {EXPECTED} (splits named by "
            "ingest.split_names)"
        )
    split_roots = _split_roots(as_split, root, dirs, files) if as_split else {"all": root}
    per_split = {}
    for split, sroot in split_roots.items():
        class_dirs, loose = _visible_dirs(sroot, skipped) if sroot != root else (dirs, files)
        if not class_dirs:
            raise ComponentError(
                f"{_found(class_dirs, loose, sroot)} and no class folders; {EXPECTED}"
            )
        per_split[split] = class_dirs
    class_names = sorted({d.name for cdirs in per_split.values() for d in cdirs})
    index = {c: i for i, c in enumerate(class_names)}
    out = {
        split: [(f, index[d.name]) for d in cdirs for f in walk(d, skipped)]
        for split, cdirs in per_split.items()
    }
    return class_names, out, skipped


def _split_roots(as_split: dict[Path, str], root: Path, dirs, files) -> dict[str, Path]:
    seen: dict[str, Path] = {}
    for d, split in as_split.items():
        if split in seen:
            raise ComponentError(
                f"{root}: folders {seen[split].name}/ and {d.name}/ both mean split {split!r}; "
                "merge them or change ingest.split_names"
            )
        seen[split] = d
    if "train" not in seen:
        raise ComponentError(f"{_found(dirs, files, root)} but no train split; {EXPECTED}")
    return {s: seen[s] for s in ("train", "validation", "test") if s in seen}


def read_split(files: list[tuple[Path, int]], progress, background, max_pixels):
    """Decodes one split's files.

    Returns:
        (images list of H×W×C uint8, labels N int64, (file, content sha256) per image,
        rejected [{source, reason}]).
    """
    images, labels, hashes, rejected = [], [], [], []
    for path, label in progress(files, total=len(files), desc="decode images"):
        if path.suffix.lower() not in EXTENSIONS:
            rejected.append(
                {
                    "source": str(path),
                    "reason": f"not an image file (extension {path.suffix or 'none'})",
                }
            )
            continue
        try:
            images.append(decode_file(path, background, max_pixels))
        except (ImageRejected, OSError) as e:
            rejected.append({"source": str(path), "reason": str(e)})
            continue
        labels.append(label)
        hashes.append((str(path), hashlib.sha256(path.read_bytes()).hexdigest()))
    return images, np.asarray(labels, np.int64), hashes, rejected


def _warn(message: str, warnings: list[str]) -> None:
    warnings.append(message)
    print(f"warning: ingest: {message}", file=sys.stderr, flush=True)


def _leakage(splits: dict, hashes: dict, policy: str, warnings: list[str]) -> int:
    """Finds content in more than one split; applies ``policy``; returns the count.

    Splits are visited train, validation, test: the first holder of a content keeps it, and
    the copies in later splits are the leaks (``drop`` removes those).
    """
    first: dict[str, tuple[str, str]] = {}
    order = sorted(splits, key=("train", "validation", "test").index)
    leaks: dict[str, list[int]] = {s: [] for s in order}
    examples = []
    for s in order:
        for i, (path, digest) in enumerate(hashes[s]):
            if digest in first and first[digest][0] != s:
                leaks[s].append(i)
                examples.append(f"{path} = {first[digest][1]}")
            else:
                first.setdefault(digest, (s, path))
    count = sum(len(v) for v in leaks.values())
    if not count:
        return 0
    example = examples[0]
    text = f"{count} images appear in more than one split (same content), e.g. {example}"
    if policy == "fail":
        raise ComponentError(f"{text}; remove them or set ingest.on_duplicates to warn or drop")
    if policy == "drop":
        for s, idx in leaks.items():
            keep = np.setdiff1d(np.arange(len(splits[s][1])), idx)
            splits[s] = ([splits[s][0][i] for i in keep], splits[s][1][keep])
        _warn(f"{text}; dropped from the later split (ingest.on_duplicates=drop)", warnings)
    else:
        _warn(f"{text}; kept (ingest.on_duplicates=warn): evaluation is optimistic", warnings)
    return count


def _drop_empty_classes(names, splits, warnings):
    counts = np.zeros(len(names), np.int64)
    for _, labels in splits.values():
        counts += np.bincount(labels, minlength=len(names))
    empty = [n for n, c in zip(names, counts, strict=True) if c == 0]
    if not empty:
        return names, splits, []
    keep = [i for i, c in enumerate(counts) if c > 0]
    if len(keep) < 2:
        raise ComponentError(
            f"only {len(keep)} class folder(s) hold usable images "
            f"({', '.join(names[i] for i in keep)}); "
            f"empty: {', '.join(empty)}; a classifier needs at least 2 classes"
        )
    _warn(f"class folders with no usable image are not classes: {', '.join(empty)}", warnings)
    remap = np.full(len(names), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    splits = {s: (images, remap[labels]) for s, (images, labels) in splits.items()}
    return [names[i] for i in keep], splits, empty


def read(p, progress):
    """Reads an image folder by ``p`` (ingest Params).

    Returns:
        (class names, {split: (images, labels)}, rejected, extra artifact properties).
    """
    names, files, skipped = layout(p.folder, dict(p.split_names))
    background = parse_colour(p.background)
    splits, hashes, rejected = {}, {}, []
    for split, split_files in files.items():
        images, labels, digests, bad = read_split(
            split_files, progress, background, p.max_image_pixels
        )
        splits[split], hashes[split] = (images, labels), digests
        rejected += bad
    warnings: list[str] = []
    leaks = _leakage(splits, hashes, p.on_duplicates, warnings) if len(splits) > 1 else 0
    names, splits, empty = (
        _drop_empty_classes(names, splits, warnings)
        if any(len(lb) for _, lb in splits.values())
        else (names, splits, [])
    )
    counts = [im.shape[-1] for images, _ in splits.values() for im in images]
    channels = choose_channels(counts, p.channels)
    splits = {s: ([to_channels(im, channels) for im in ims], lb) for s, (ims, lb) in splits.items()}
    extra = {
        "skipped": dict(sorted(skipped.items())),
        "empty_classes": empty,
        "duplicates_across_splits": leaks,
        "background": list(background),
        "warnings": warnings,
    }
    return names, splits, rejected, extra
