"""IDX files (the MNIST format), gzipped or plain, read defensively.

A truncated file keeps its complete records; the missing ones are rejected, not invented.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    # zlib rather than gzip.open: a truncated .gz still yields everything before the cut.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return d.decompress(raw) + d.flush()
    except zlib.error as e:
        raise ComponentError(f"{path}: not a readable gzip file ({e})") from None


def read_idx(path: str | Path) -> tuple[np.ndarray, int]:
    """Reads an IDX file.

    Returns:
        (array of the complete records, number of records the header declares).
    """
    path = Path(path)
    if not path.is_file():
        raise ComponentError(
            f"IDX file not found: {path}; install dataset-fashion-mnist or fix the path"
        )
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ComponentError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ComponentError(f"{path}: IDX header is truncated")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[data[2]])
    item = int(np.prod(dims[1:], dtype=np.int64)) * dtype.itemsize
    complete = min(dims[0], (len(data) - header) // max(item, 1))
    arr = np.frombuffer(data, dtype=dtype, count=complete * item // dtype.itemsize, offset=header)
    return arr.reshape(complete, *dims[1:]), dims[0]


def read_pair(images_path: str, labels_path: str, num_classes: int):
    """Reads one split's images and labels.

    Returns:
        (images N×H×W×C uint8, labels N int64, rejected [{source, index, reason}]).
    """
    images, declared_images = read_idx(images_path)
    labels, declared_labels = read_idx(labels_path)
    if images.ndim not in (3, 4):
        raise ComponentError(f"{images_path}: expected N×H×W images, got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ComponentError(f"{images_path}: expected unsigned-byte pixels, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    rejected = []
    declared = max(declared_images, declared_labels)
    n = min(len(images), len(labels))
    for i in range(n, declared):
        reason = (
            "image missing (file truncated)"
            if i >= len(images)
            else "label missing (file truncated)"
        )
        rejected.append(
            {
                "source": images_path if i >= len(images) else labels_path,
                "index": i,
                "reason": reason,
            }
        )
    labels = labels[:n].astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    for i in bad:
        rejected.append(
            {
                "source": labels_path,
                "index": int(i),
                "reason": f"label {int(labels[i])} not in [0, {num_classes})",
            }
        )
    keep = np.ones(n, bool)
    keep[bad] = False
    return images[:n][keep], labels[keep], rejected
