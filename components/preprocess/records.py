"""Reading, checking and writing Examples records a whole shard at a time.

The format is components/examples.py's (image bytes + shape + label in a tf.train.Example).
The record codec itself (parse_record, encode_batch) lives in components/examples.py.
Decoding parses a whole shard in one ``tf.io.parse_example`` call and checks it with numpy;
only when that fails (a record that is not an Example, a missing feature, …) does it fall back
to one protobuf parse per record, which also yields the reason for each bad record. Encoding
fills a byte template per batch, since every record of a batch has the same shape.
"""

from __future__ import annotations

import numpy as np
from convflow.components.examples import (
    IMAGE,
    LABEL,
    SHAPE,
    RejectedRecord,
    iter_records,
    parse_record,
)


def read_records(path: str) -> tuple[np.ndarray, str | None]:
    """All records of one file as a numpy object array, read in C++ chunks.

    Returns:
        The records, and None, or the reason the file could not be read to its end (the
        records before the damage are kept).
    """
    import tensorflow as tf

    chunks = []
    try:
        chunks.extend(tf.data.TFRecordDataset(path).batch(8192).as_numpy_iterator())
    except tf.errors.DataLossError:  # the partial chunk is lost: salvage it record by record
        records = []
        try:
            records.extend(iter_records(path))
        except tf.errors.DataLossError as e:
            where = f"after record {len(records) - 1}" if records else "at the start"
            return np.array(records, dtype=object), f"unreadable TFRecord data {where}: {e.message}"
        return np.array(records, dtype=object), None  # the one-by-one read got everything
    return (np.concatenate(chunks) if chunks else np.zeros(0, object)), None


def _reason(record: bytes, dtype: str, channels: int | None, num_classes: int | None) -> str:
    try:
        parse_record(record, dtype, channels, num_classes)
    except RejectedRecord as e:
        return str(e)
    return "failed the batch checks"  # unreachable while both checks agree; kept honest


def decode_records(records: np.ndarray, dtype: str, channels: int | None, num_classes: int | None):
    """Decodes a shard's records into same-shape groups.

    Returns:
        ``groups``: ``{(H, W, C): (indices, images (N, H, W, C), labels (N,))}`` in record
        order, and ``rejected``: ``[(index, reason)]``.
    """
    import tensorflow as tf

    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        SHAPE: tf.io.FixedLenFeature([3], tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
    }
    if not len(records):
        return {}, []
    try:
        parsed = tf.io.parse_example(records, spec)
    except (tf.errors.InvalidArgumentError, UnicodeDecodeError):
        # Some record is not a well-formed Example (TF fails to decode its own message about
        # binary garbage, hence the UnicodeDecodeError): find which, one by one.
        return _decode_one_by_one(records, dtype, channels, num_classes)
    shapes, labels, raw = parsed[SHAPE].numpy(), parsed[LABEL].numpy(), parsed[IMAGE]
    lengths = tf.strings.length(raw).numpy()
    good = (shapes > 0).all(1) & (lengths == shapes.prod(1) * np.dtype(dtype).itemsize)
    if channels is not None:
        good &= shapes[:, 2] == channels
    if num_classes is not None:
        good &= (labels >= 0) & (labels < num_classes)
    groups = {}
    same = (shapes == shapes[0]).all()  # the usual case; skips a sort of every shape
    for shape in shapes[:1] if same else np.unique(shapes[good], axis=0):
        index = np.flatnonzero(good & (shapes == shape).all(1))
        pixels = raw if len(index) == len(raw) else tf.gather(raw, index)
        images = tf.io.decode_raw(pixels, dtype).numpy()
        images = images.reshape(len(index), *shape)
        if dtype != "uint8":
            finite = np.isfinite(images).all(axis=(1, 2, 3))
            if not finite.all():
                good[index[~finite]] = False
                index, images = index[finite], images[finite]
        if len(index):
            groups[tuple(int(d) for d in shape)] = (index, images, labels[index])
    bad = np.flatnonzero(~good)
    return groups, [(int(i), _reason(records[i], dtype, channels, num_classes)) for i in bad]


def _decode_one_by_one(records, dtype, channels, num_classes):
    found, rejected = {}, []
    for index, record in enumerate(records):
        try:
            image, label = parse_record(record, dtype, channels, num_classes)
        except RejectedRecord as e:
            rejected.append((index, str(e)))
            continue
        found.setdefault(image.shape, []).append((index, image, label))
    groups = {
        shape: (
            np.array([i for i, _, _ in items]),
            np.stack([x for _, x, _ in items]),
            np.array([y for _, _, y in items], np.int64),
        )
        for shape, items in found.items()
    }
    return groups, rejected
