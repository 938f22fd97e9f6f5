"""The fingerprint of the data an ingest step reads: cheap enough to poll every few seconds.

sha256 over the sorted listing of the source's files with their sizes and modification
times (ns), not their bytes: a new image in a folder, a removed one, or a re-downloaded
IDX file changes it, and a 70k-image folder is fingerprinted in well under a second.
Light module (standard library only): the scheduler polls it without loading TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def source_files(params) -> list[Path]:
    """The files ``params`` (ingest's Params) makes ingest read; missing ones are kept.

    A missing file is part of the listing (as missing), so that a file that appears
    later changes the fingerprint instead of going unnoticed.
    """
    if params.source == "idx":
        idx = params.idx
        return [
            Path(p) for p in (idx.train_images, idx.train_labels, idx.test_images, idx.test_labels)
        ]
    if params.source == "scenes":
        root = Path(params.scenes.idx_dir)
        names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
        names += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
        return [root / f"{n}.gz" for n in names] + [root / n for n in names]
    if params.source in ("folder", "mask_folder", "voc_segmentation"):
        root = Path(params.folder)
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(folder) / f for f in files if not f.startswith(".")]
        return sorted(found) or [root]
    data_dir = Path(params.tfds_data_dir or Path.home() / "tensorflow_datasets")
    root = data_dir / params.tfds_name
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def source_fingerprint(params) -> str:
    """sha256 hex over (path, size, mtime_ns) of every file of the ingest source.

    Args:
        params: ingest's ``Params`` (``source``, ``idx``, ``folder``, ``tfds_*``).

    Returns:
        64 hex characters; equal for an unchanged source, different after any file is
        added, removed, resized or rewritten.
    """
    h = hashlib.sha256(f"{params.source}\0".encode())
    for path in source_files(params):
        try:
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()
