"""IDX files (the MNIST format), gzipped or plain, read defensively.

A truncated file keeps its complete records; the missing ones are rejected, not invented.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
from convflow.components.base import ComponentError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_LISTED = 1000  # missing records beyond this are one aggregated rejection


def _header(head: bytes, path: Path) -> tuple[np.dtype, list[int], int]:
    """(dtype, dims, header length) from the first bytes of an IDX file."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
        raise ComponentError(f"{path}: not an IDX file (bad magic number {head[:4].hex()})")
    ndim = head[3]
    size = 4 + 4 * ndim
    if ndim == 0 or len(head) < size:
        raise ComponentError(f"{path}: IDX header is truncated or declares no dimensions")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.dtype(_DTYPES[head[2]]), dims, size


def _read_bytes(path: Path, raw: bytes) -> bytes:
    """The IDX bytes of a plain or gzipped file, never more than its header declares (+1)."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    # zlib rather than gzip.open: a truncated .gz still yields everything before the cut.
    # Output is capped by what the header declares, so a gzip bomb cannot fill the memory.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        out += d.decompress(raw, 4 + 4 * 255)
        dtype, dims, size = _header(bytes(out), path)
        declared = size + math.prod(dims) * dtype.itemsize
        while len(out) <= declared and not d.eof:
            chunk = d.decompress(d.unconsumed_tail, min(declared + 1 - len(out), 1 << 26))
            if not chunk:
                break
            out += chunk
    except zlib.error as e:
        if not out:
            raise ComponentError(f"{path}: not a readable gzip file ({e})") from None
        # A broken trailer or a cut: keep what came through; the records count decides.
    return bytes(out)


def read_idx(path: str | Path) -> tuple[np.ndarray, int]:
    """Reads an IDX file, checking its header against the data before allocating anything.

    The header's dimensions say how many bytes the file must hold. A file holding fewer
    keeps its complete records (the rest are missing); one whose record size does not
    divide what it holds, or that holds more than declared, is refused. Memory use is
    bounded by the file's real size, whatever the header claims.

    Returns:
        (array of the complete records, number of records the header declares).

    Raises:
        ComponentError: not found, not IDX, or dimensions that do not match the data.
    """
    path = Path(path)
    if not path.is_file():
        raise ComponentError(
            f"IDX file not found: {path}; install dataset-fashion-mnist or fix the path"
        )
    with path.open("rb") as fh:
        peek = fh.read(4 + 4 * 255)
    if peek[:2] != b"\x1f\x8b":
        _header(peek, path)  # a plain file: refuse junk before reading it whole
    data = _read_bytes(path, path.read_bytes())
    dtype, dims, header = _header(data[: 4 + 4 * 255], path)
    item = math.prod(dims[1:]) * dtype.itemsize
    held = len(data) - header
    if item == 0:
        raise ComponentError(f"{path}: IDX header declares empty records (shape {dims})")
    if held > dims[0] * item:
        raise ComponentError(
            f"{path}: holds {held:,} bytes of records but its header declares {dims[0]:,} "
            f"records of shape {dims[1:]} ({dims[0] * item:,} bytes); the header is wrong"
        )
    complete = held // item
    if complete == 0 and held > 0:
        raise ComponentError(
            f"{path}: its {held:,} bytes do not hold one record of shape {dims[1:]} "
            f"({item:,} bytes); the header's dimensions do not match the data"
        )
    arr = np.frombuffer(data, dtype=dtype, count=complete * item // dtype.itemsize, offset=header)
    return arr.reshape(complete, *dims[1:]), dims[0]


def _missing(images_path, labels_path, n_images, n_labels, declared) -> list[dict]:
    """Rejections for records the headers declare but the files do not hold.

    The first MAX_LISTED of each kind are listed one by one; the rest is one aggregated
    rejection with a ``count``, so a header that lies by billions costs nothing.
    """
    out = []
    spans = (
        ("image", images_path, n_images, declared),
        ("label", labels_path, n_labels, min(declared, n_images)),
    )
    for kind, source, first, end in spans:
        reason = f"{kind} missing (file truncated)"
        listed = range(first, min(end, first + MAX_LISTED))
        out += [{"source": source, "index": i, "reason": reason} for i in listed]
        rest = end - first - MAX_LISTED
        if rest > 0:
            out.append(
                {
                    "source": source,
                    "index": f"{first + MAX_LISTED}..{end - 1}",
                    "count": rest,
                    "reason": f"{rest:,} more {kind}s missing: the header declares {declared:,}",
                }
            )
    return out


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
    if labels.ndim != 1:
        raise ComponentError(
            f"{labels_path}: expected a 1-D label file (N), got shape {list(labels.shape)}"
        )
    n = min(len(images), len(labels))
    declared = max(declared_images, declared_labels)
    rejected = _missing(images_path, labels_path, len(images), len(labels), declared)
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
