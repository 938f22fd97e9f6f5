"""Reading, checking and writing Examples records a whole shard at a time.

The format is components/examples/codec.py's (image bytes + shape + the task's target
features in a tf.train.Example); the codec itself (parse_record, encode_batch) lives there.
Decoding parses a whole shard in one ``tf.io.parse_example`` call and checks it with numpy
when the task's targets have fixed shapes (classification's label); only when that fails (a
record that is not an Example, a missing feature, …), or for tasks whose targets vary in size
(masks, boxes), does it parse one record at a time, which also yields the reason for each
bad record.
"""

from __future__ import annotations

import numpy as np
from convflow.components.examples import IMAGE, SHAPE, RejectedRecord, iter_records, parse_record
from convflow.components.examples.codec import columns


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


def _reason(record: bytes, dtype: str, channels, num_classes, task) -> str:
    try:
        parse_record(record, dtype, channels, num_classes, task)
    except RejectedRecord as e:
        return str(e)
    return "failed the batch checks"  # unreachable while both checks agree; kept honest


def _fixed(task) -> bool:
    return all(
        f.dtype != "uint8" and all(isinstance(d, int) for d in f.shape)
        for f in task.target_features
    )


def decode_records(
    records: np.ndarray, dtype: str, channels: int | None, num_classes: int | None, task
):
    """Decodes a shard's records into same-shape groups.

    Returns:
        ``groups``: ``{(H, W, C): (indices, images (N, H, W, C), target columns)}`` in record
        order, and ``rejected``: ``[(index, reason)]``.
    """
    import tensorflow as tf

    if not len(records):
        return {}, []
    if not _fixed(task):
        return _decode_one_by_one(records, dtype, channels, num_classes, task)
    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        SHAPE: tf.io.FixedLenFeature([3], tf.int64),
    }
    for f in task.target_features:
        spec[f.name] = tf.io.FixedLenFeature(list(f.shape), tf.as_dtype(f.dtype))
    try:
        parsed = tf.io.parse_example(records, spec)
    except (tf.errors.InvalidArgumentError, UnicodeDecodeError):
        # Some record is not a well-formed Example (TF fails to decode its own message about
        # binary garbage, hence the UnicodeDecodeError): find which, one by one.
        return _decode_one_by_one(records, dtype, channels, num_classes, task)
    shapes, raw = parsed[SHAPE].numpy(), parsed[IMAGE]
    targets = {f.name: parsed[f.name].numpy() for f in task.target_features}
    lengths = tf.strings.length(raw).numpy()
    good = (shapes > 0).all(1) & (lengths == shapes.prod(1) * np.dtype(dtype).itemsize)
    if channels is not None:
        good &= shapes[:, 2] == channels
    for i in np.flatnonzero(good):  # value checks (class ids in range) are the task's
        row = {k: v[i] for k, v in targets.items()}
        good[i] = task.check_target(row, shapes[i], num_classes) is None
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
            groups[tuple(int(d) for d in shape)] = (
                index,
                images,
                {k: v[index] for k, v in targets.items()},
            )
    bad = np.flatnonzero(~good)
    reasons = [(int(i), _reason(records[i], dtype, channels, num_classes, task)) for i in bad]
    return groups, reasons


def _decode_one_by_one(records, dtype, channels, num_classes, task):
    found, rejected = {}, []
    for index, record in enumerate(records):
        try:
            image, target = parse_record(record, dtype, channels, num_classes, task)
        except RejectedRecord as e:
            rejected.append((index, str(e)))
            continue
        found.setdefault(image.shape, []).append((index, image, target))
    groups = {}
    for shape, items in found.items():
        rows = [columns(t, task.target_features) for _, _, t in items]
        groups[shape] = (
            np.array([i for i, _, _ in items]),
            np.stack([x for _, x, _ in items]),
            {f.name: _column([r[f.name] for r in rows]) for f in task.target_features},
        )
    return groups, rejected


def _column(values: list) -> np.ndarray:
    """Stacked when every record's value has one shape, else a 1-D object array."""
    if len({np.shape(v) for v in values}) == 1:
        return np.stack([np.asarray(v) for v in values])
    out = np.empty(len(values), object)
    out[:] = [np.asarray(v) for v in values]
    return out
