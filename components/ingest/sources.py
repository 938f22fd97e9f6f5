"""The fingerprint of the data ingest reads, for its cache key (light: no TF, no Beam).

Every file a source step may read is listed: the IDX files, everything below an image
folder, a TFDS dataset's prepared directory (its version is a folder name, so a new version
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LISTED = 200  # up to this many files are kept by name, so a cache miss can name them


def _paths(params: Any) -> Iterator[Path]:
    """The existing files and folders the configured source reads."""
    source = getattr(params, "source", None)
    idx = [getattr(params.idx, f.name) for f in dataclasses.fields(params.idx)]
    if source == "idx":
        candidates = idx
    elif source == "tfds":
        data_dir = params.tfds_data_dir or os.environ.get("TFDS_DATA_DIR")
        candidates = [str(Path(data_dir or Path.home() / "tensorflow_datasets") / params.tfds_name)]
    elif source == "folder":
        candidates = [params.folder]
    else:  # another kind (scenes built from the IDX files, masks, boxes): IDX + path params
        candidates = idx + [
            getattr(params, f.name)
            for f in dataclasses.fields(params)
            if not f.name.startswith("tfds")
            and isinstance(getattr(params, f.name), str)
            and _looks_like_path(f.name, getattr(params, f.name))
        ]
    for value in candidates:
        if isinstance(value, str) and value and Path(value).exists():
            yield Path(value)


def _looks_like_path(name: str, value: str) -> bool:
    # "source: idx" must not pick up a file called idx in the working directory.
    hints = ("dir", "path", "file", "folder", "root", "images", "labels", "masks", "annotations")
    return os.sep in value or any(h in name for h in hints)


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


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
    for root in sorted(set(_paths(params))):
        for f in _files(root):
            try:
                listing[str(f.absolute())] = list(_entry(f, how))
            except OSError:  # vanished or unreadable while listing: ingest will say so
                listing[str(f.absolute())] = [-1, "unreadable"]
    blob = json.dumps(sorted(listing.items())).encode()
    return {
        "how": how,
        "files": len(listing),
        "bytes": sum(size for size, _ in listing.values() if size > 0),
        "digest": hashlib.sha256(blob).hexdigest(),
        "listing": listing if len(listing) <= LISTED else None,
    }
