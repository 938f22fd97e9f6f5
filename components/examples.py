"""The on-disk format of ``Examples`` artifacts: TFRecord shards of tf.train.Example.

Each record holds ``image`` (the pixels as raw bytes, dtype from artifact.json: ``uint8``
after ingest, ``float32`` after preprocessing), ``shape`` ([H, W, C], so images of any size
fit) and ``label`` (int64). Shards are named ``<split>-<i>-of-<n>.tfrecord``; artifact.json
lists them per split with counts, so readers never glob.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from components.base import Artifact, ComponentError

IMAGE, SHAPE, LABEL = "image", "shape", "label"
SPLITS = ("train", "validation", "test")
DTYPES = ("uint8", "float32")


def _tf():
    import tensorflow as tf  # imported late: the CLI and the config checks must not pay for it

    return tf


def encode(image: np.ndarray, label: int) -> bytes:
    """Serializes one H×W×C image and its label as a tf.train.Example."""
    tf = _tf()
    feature = {
        IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        SHAPE: tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
        LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode(record: bytes, dtype: str) -> tuple[np.ndarray, int]:
    """Inverse of :func:`encode`, in numpy."""
    tf = _tf()
    ex = tf.train.Example.FromString(record).features.feature
    shape = tuple(ex[SHAPE].int64_list.value)
    image = np.frombuffer(ex[IMAGE].bytes_list.value[0], dtype=dtype).reshape(shape)
    return image, int(ex[LABEL].int64_list.value[0])


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def write_shard(path: str | Path, images, labels) -> int:
    """Writes images (an N×H×W×C array or a list of H×W×C arrays) and labels to one shard."""
    tf = _tf()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(images, labels, strict=True):
            writer.write(encode(np.ascontiguousarray(image), label))
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


def iter_records(path: str | Path) -> Iterator[bytes]:
    tf = _tf()
    yield from tf.data.TFRecordDataset(str(path)).as_numpy_iterator()


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
