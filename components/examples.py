"""The on-disk format of ``Examples`` artifacts: TFRecord shards of tf.train.Example.

Each record holds ``image`` (the pixels as raw bytes, dtype from artifact.json: ``uint8``
after ingest, ``float32`` after preprocessing), ``shape`` ([H, W, C], so images of any size
fit) and ``label`` (int64). Shards are named ``<split>-<i>-of-<n>.tfrecord``; artifact.json
lists them per split with counts, so readers never glob.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from convflow.components.base import Artifact, ComponentError

IMAGE, SHAPE, LABEL = "image", "shape", "label"
SPLITS = ("train", "validation", "test")
DTYPES = ("uint8", "float32")


def _tf():
    import tensorflow as tf  # imported late: the CLI and the config checks must not pay for it

    return tf


class RejectedRecord(ValueError):
    """A record that cannot become a valid image; its message is the dead-letter reason."""


def parse_record(record: bytes, dtype: str, channels: int | None, num_classes: int | None):
    """Decodes and checks one serialized tf.train.Example (None skips that check).

    Returns:
        ``(image (H, W, C) array, label)``.

    Raises:
        RejectedRecord: naming what is wrong with the record.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    try:
        feats = example_pb2.Example.FromString(record).features.feature
    except DecodeError as e:
        raise RejectedRecord(f"not a tf.train.Example ({e})") from None
    for key in (IMAGE, SHAPE, LABEL):
        if key not in feats:
            raise RejectedRecord(f"missing feature {key!r}")
    shape = tuple(feats[SHAPE].int64_list.value)
    if len(shape) != 3 or min(shape) < 1:
        raise RejectedRecord(f"bad shape {list(shape)}; expected [H, W, C] > 0")
    if channels is not None and shape[2] != channels:
        raise RejectedRecord(f"{shape[2]} channels; expected {channels}")
    raw = feats[IMAGE].bytes_list.value
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(raw) != 1 or len(raw[0]) != expected:
        got = [len(r) for r in raw]
        raise RejectedRecord(f"image bytes {got} do not match shape {list(shape)} of {dtype}")
    image = np.frombuffer(raw[0], dtype).reshape(shape)
    if dtype != "uint8" and not np.isfinite(image).all():
        raise RejectedRecord("non-finite pixel values (NaN or inf)")
    labels = feats[LABEL].int64_list.value
    if len(labels) != 1:
        raise RejectedRecord(f"{len(labels)} labels; expected 1")
    if num_classes is not None and not 0 <= labels[0] < num_classes:
        raise RejectedRecord(f"label {labels[0]} outside [0, {num_classes})")
    return image, int(labels[0])


def decode(record: bytes, dtype: str) -> tuple[np.ndarray, int]:
    """One record as (H×W×C image, label), unchecked against channels or classes."""
    return parse_record(record, dtype, None, None)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(key: str, feature: bytes) -> bytes:
    """One entry of ``Features.feature`` (map<string, Feature>, field 1)."""
    return _field(1, _field(1, key.encode()) + _field(2, feature))


def _int64_feature(values) -> bytes:
    # Feature.int64_list (field 3) -> Int64List.value (field 1, packed)
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in values)))


def encode_batch(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Serializes ``(N, H, W, C)`` images as tf.train.Examples, like examples.encode.

    All records of a batch share a shape, so everything but the pixels and the label is one
    byte template, filled per record with a join (about 10× faster than building protos).
    """
    images = np.ascontiguousarray(images)
    n, size = len(images), images[0].nbytes if len(images) else 0
    # Feature.bytes_list (field 1) -> BytesList.value (field 1) -> the pixels
    value_head = _varint(1 << 3 | 2) + _varint(size)
    bytes_list_len = len(value_head) + size
    feature_head = _varint(1 << 3 | 2) + _varint(bytes_list_len) + value_head
    key = _field(1, IMAGE.encode())
    feature_len = len(feature_head) + size
    entry_body = len(key) + len(_varint(2 << 3 | 2)) + len(_varint(feature_len)) + feature_len
    image_head = (
        _varint(1 << 3 | 2)
        + _varint(entry_body)
        + key
        + _varint(2 << 3 | 2)
        + _varint(feature_len)
        + feature_head
    )
    shape_entry = _entry(SHAPE, _int64_feature(images.shape[1:]))
    label_entries = {int(v): _entry(LABEL, _int64_feature([v])) for v in np.unique(labels)}
    buf = images.tobytes()
    records = []
    fixed = len(image_head) + size + len(shape_entry)
    for i in range(n):
        label = label_entries[int(labels[i])]
        body = fixed + len(label)
        records.append(
            b"".join(
                (
                    b"\n",
                    _varint(body),
                    image_head,
                    buf[i * size : (i + 1) * size],
                    shape_entry,
                    label,
                )
            )
        )
    return records


def encode(image: np.ndarray, label: int) -> bytes:
    """Serializes one H×W×C image and its label as a tf.train.Example."""
    return encode_batch(image[None], np.array([label]))[0]


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def write_shard(path: str | Path, images, labels) -> int:
    """Writes images (an N×H×W×C array or a list of H×W×C arrays) and labels to one shard."""
    tf = _tf()
    labels = np.asarray(labels)
    if isinstance(images, np.ndarray):
        records = encode_batch(images, labels)
    else:
        records = [
            encode(np.ascontiguousarray(im), lb) for im, lb in zip(images, labels, strict=True)
        ]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return len(labels)


def write_split(out_dir: Path, split: str, images, labels, shard_size: int = 10_000) -> dict:
    """Writes one split as shards of at most ``shard_size`` records.

    Returns:
        The split's entry for artifact.json: ``{"count": N, "files": [...]}``.
    """
    n = len(labels)
    count = max(1, -(-n // shard_size))
    files = []
    for i in range(count):
        name = shard_name(split, i, count)
        sl = slice(i * shard_size, min(n, (i + 1) * shard_size))
        write_shard(out_dir / name, images[sl], labels[sl])
        files.append(name)
    return {"count": n, "files": files}


def iter_records(path: str) -> Iterator[bytes]:
    """Serialized records of one TFRecord file, one by one (any tf.io.gfile URL)."""
    import tensorflow as tf

    yield from tf.data.TFRecordDataset(path).as_numpy_iterator()


def read_shard(path: str | Path, dtype: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Reads one shard into a list of images (sizes may differ) and a label array."""
    images, labels = [], []
    for record in iter_records(path):
        image, label = decode(record, dtype)
        images.append(image)
        labels.append(label)
    return images, np.asarray(labels, dtype=np.int64)


def split_files(artifact: Artifact, split: str) -> list[str]:
    """Absolute paths of a split's shards, in order; a clear error for a missing split."""
    splits = artifact.properties.get("splits", {})
    if split not in splits:
        raise ComponentError(f"{artifact.uri} has no split {split!r}; it has {sorted(splits)}")
    return [str(artifact.path / name) for name in splits[split]["files"]]


def read_split(artifact: Artifact, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split as (N×H×W×C array, N labels); images must share one shape."""
    ds = dataset(artifact, split)
    images, labels = [], []
    for image, label in ds.batch(4096).as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        shape = artifact.properties.get("image_shape") or (0, 0, 0)
        return np.zeros((0, *shape), artifact.properties["dtype"]), np.zeros((0,), np.int64)
    return np.concatenate(images), np.concatenate(labels)


def dataset(artifact: Artifact, split: str, *, ragged: bool = False):
    """A tf.data.Dataset of (image, label) for one split.

    Images come back with their dtype from artifact.json and a static shape when the
    artifact declares one ``image_shape`` (``ragged=True`` keeps them per-image instead).
    """
    tf = _tf()
    dtype = tf.as_dtype(artifact.properties["dtype"])
    shape = artifact.properties.get("image_shape")
    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        SHAPE: tf.io.FixedLenFeature([3], tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        image = tf.reshape(tf.io.decode_raw(ex[IMAGE], dtype), ex[SHAPE])
        if shape and not ragged:
            image = tf.ensure_shape(image, shape)
        return image, ex[LABEL]

    files = split_files(artifact, split)
    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
