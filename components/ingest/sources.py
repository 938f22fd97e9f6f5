"""The fingerprint of the data ingest reads, for its cache key (light: no TF, no Beam).

Every file a source step may read is listed, by the same ``fingerprint.source_files`` the
scheduler's data trigger polls: the IDX files, everything below an image folder (dot-files
aside), a TFDS dataset's prepared directory (its version is a folder name, so a new version
is a new listing). With ``ingest.fingerprint: stat`` each file enters as (size, mtime in
ns), which costs one ``stat`` per file; with ``content`` as the sha256 of its bytes. A
source kind not named here is covered by every path-like string param it has (a value
with a "/", or a field named like a path).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from convflow.components.ingest.fingerprint import source_files

LISTED = 200  # up to this many files are kept by name, so a cache miss can name them
# Sources fingerprint.source_files lists (scenes: their IDX files; mask sources: the folder).
LISTED_SOURCES = ("idx", "folder", "tfds", "scenes", "mask_folder", "voc_segmentation")
LISTED_SOURCES += ("tfds_segmentation",)


def _files(params: Any) -> list[Path]:
    """Every file the configured source makes ingest read (missing ones included)."""
    if getattr(params, "source", None) in LISTED_SOURCES:
        return source_files(params)  # the same listing the scheduler polls
    # another kind (boxes): IDX + path-like params (class_names is a list, not a path)
    idx = [getattr(params.idx, f.name) for f in dataclasses.fields(params.idx)]
    idx = [v for v in idx if isinstance(v, str)]
    named = [
        getattr(params, f.name)
        for f in dataclasses.fields(params)
        if not f.name.startswith("tfds")
        and isinstance(getattr(params, f.name), str)
        and _looks_like_path(f.name, getattr(params, f.name))
    ]
    out: list[Path] = []
    for value in idx + named:
        root = Path(value)
        if root.is_dir():
            out += [Path(d) / f for d, _, files in os.walk(root) for f in files]
        elif value:
            out.append(root)
    return sorted(out)


def _looks_like_path(name: str, value: str) -> bool:
    # "source: idx" must not pick up a file called idx in the working directory.
    hints = ("dir", "path", "file", "folder", "root", "images", "labels", "masks", "annotations")
    return os.sep in value or any(h in name for h in hints)


def _entry(path: Path, how: str) -> tuple[int, str]:
    st = path.stat()
    if how == "content":
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return st.st_size, h.hexdigest()
    return st.st_size, str(st.st_mtime_ns)


def fingerprint(params: Any) -> dict[str, Any]:
    """What ingest reads, as cache-key parts.

    Returns:
        {"how": "stat"|"content", "files": count, "bytes": total size, "digest": sha256 of
        the sorted listing, "listing": {path: [size, mtime_ns or sha256]} when at most
        LISTED files (else None)}.
    """
    how = getattr(params, "fingerprint", "stat")
    listing: dict[str, list] = {}
    for f in _files(params):
        try:
            listing[str(f.absolute())] = list(_entry(f, how))
        except OSError:  # missing or unreadable: ingest will say so; appearing later counts
            listing[str(f.absolute())] = [-1, "missing"]
    blob = json.dumps(sorted(listing.items())).encode()
    return {
        "how": how,
        "files": len(listing),
        "bytes": sum(size for size, _ in listing.values() if size > 0),
        "digest": hashlib.sha256(blob).hexdigest(),
        "listing": listing if len(listing) <= LISTED else None,
    }
