"""Examples on disk: TFRecord shards per split, and reading them back (numpy or tf.data).

Shards are named ``<split>-<i>-of-<n>.tfrecord``; artifact.json lists them per split with
counts (:class:`ExamplesInfo`), so readers never glob. The record format is codec.py's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from convflow.components.base import Artifact, ComponentError
from convflow.components.examples.codec import (
    IMAGE,
    LABEL_FEATURES,
    SHAPE,
    bare,
    columns,
    decode,
    encode_batch,
)
from convflow.components.targets import TargetFeature

SPLITS = ("train", "validation", "test")


def _tf():
    import tensorflow as tf  # imported late: the CLI and the config checks must not pay for it

    return tf


def _encode_all(images, targets, features: Sequence[TargetFeature]) -> list[bytes]:
    if isinstance(images, np.ndarray):
        return encode_batch(images, targets, features)
    cols = columns(targets, features)
    out = []
    for i, image in enumerate(images):
        one = {k: _row(v, i) for k, v in cols.items()}
        out.append(encode_batch(np.ascontiguousarray(image)[None], one, features)[0])
    return out


def _row(column, i) -> np.ndarray:
    value = column[i]
    if isinstance(column, np.ndarray) and column.dtype != object:
        return np.asarray(column[i : i + 1])
    holder = np.empty(1, object)
    holder[0] = np.asarray(value)
    return holder


def write_shard(path: str | Path, images, targets, features=LABEL_FEATURES) -> int:
    """Writes images (an N×H×W×C array or a list of H×W×C arrays) and targets to one shard."""
    tf = _tf()
    records = _encode_all(images, targets, features)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return len(records)


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def write_split(
    out_dir: Path, split: str, images, targets, shard_size: int = 10_000, features=LABEL_FEATURES
) -> dict:
    """Writes one split as shards of at most ``shard_size`` records.

    Returns:
        The split's entry for artifact.json: ``{"count": N, "files": [...]}``.
    """
    cols = columns(targets, features)
    n = len(images)
    count = max(1, -(-n // shard_size))
    files = []
    for i in range(count):
        name = shard_name(split, i, count)
        sl = slice(i * shard_size, min(n, (i + 1) * shard_size))
        write_shard(out_dir / name, images[sl], {k: v[sl] for k, v in cols.items()}, features)
        files.append(name)
    return {"count": n, "files": files}


def iter_records(path: str) -> Iterator[bytes]:
    """Serialized records of one TFRecord file, one by one (any tf.io.gfile URL)."""
    tf = _tf()
    yield from tf.data.TFRecordDataset(path).as_numpy_iterator()


def read_shard(path: str | Path, dtype: str, task: Any = None) -> tuple[list[np.ndarray], Any]:
    """Reads one shard into a list of images (sizes may differ) and their targets."""
    images, targets = [], []
    for record in iter_records(str(path)):
        image, target = decode(record, dtype, task)
        images.append(image)
        targets.append(target)
    return images, _stack(targets)


def _stack(targets: list) -> Any:
    if targets and isinstance(targets[0], dict):
        return {k: _column([t[k] for t in targets]) for k in targets[0]}
    return np.asarray(targets, dtype=np.int64)


def _column(values: list) -> np.ndarray:
    shapes = {np.shape(v) for v in values}
    if len(shapes) == 1:
        return np.stack(values) if values else np.zeros(0)
    out = np.empty(len(values), object)
    out[:] = values
    return out


def split_files(artifact: Artifact, split: str) -> list[str]:
    """Absolute paths of a split's shards, in order; a clear error for a missing split."""
    splits = artifact.properties.get("splits", {})
    if split not in splits:
        raise ComponentError(f"{artifact.uri} has no split {split!r}; it has {sorted(splits)}")
    return [str(artifact.path / name) for name in splits[split]["files"]]


def read_split(artifact: Artifact, split: str, task: Any = None) -> tuple[Any, Any]:
    """A whole split as (images, targets).

    Images are one (N, H, W, C) array when the artifact declares one ``image_shape``, else a
    list of (H, W, C) arrays; targets are columns (bare for a one-feature task: labels).
    """
    features = _features(task)
    uniform = artifact.properties.get("image_shape")
    # Variable-length targets (detection's boxes) do not batch in tf.data: read per record.
    if not uniform or any(f.variable for f in features):
        images, targets = [], []
        for path in split_files(artifact, split):
            im, tg = read_shard(path, artifact.properties["dtype"], task)
            images += im
            targets.append(columns(tg, features))
        merged = {f.name: _concat([t[f.name] for t in targets]) for f in features}
        if uniform:
            dtype = artifact.properties["dtype"]
            images = np.stack(images) if images else np.zeros((0, *uniform), dtype)
        return images, bare(merged, features)
    images, targets = [], []
    for image, target in dataset(artifact, split, task=task).batch(4096).as_numpy_iterator():
        images.append(image)
        targets.append(columns(target, features))
    if not images:
        shape = artifact.properties.get("image_shape") or (0, 0, 0)
        empty = {f.name: np.zeros((0,), np.int64) for f in features}
        return np.zeros((0, *shape), artifact.properties["dtype"]), bare(empty, features)
    merged = {f.name: _concat([t[f.name] for t in targets]) for f in features}
    return np.concatenate(images), bare(merged, features)


def _concat(parts: list) -> np.ndarray:
    if any(p.dtype == object for p in parts):
        return _column([v for p in parts for v in p])
    return np.concatenate(parts) if parts else np.zeros(0)


def _features(task: Any) -> tuple[TargetFeature, ...]:
    return task.target_features if task is not None else LABEL_FEATURES


def _parse_spec(tf, features):
    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        SHAPE: tf.io.FixedLenFeature([3], tf.int64),
    }
    for f in features:
        if f.dtype == "uint8":
            spec[f.name] = tf.io.FixedLenFeature([], tf.string)
        elif all(isinstance(d, int) for d in f.shape):
            spec[f.name] = tf.io.FixedLenFeature(list(f.shape), tf.as_dtype(f.dtype))
        else:
            spec[f.name] = tf.io.VarLenFeature(tf.as_dtype(f.dtype))
    return spec


def _target_tensor(tf, f: TargetFeature, value, shape):
    """A parsed feature in its declared shape (H, W from the image; None from its length)."""
    if f.dtype == "uint8":
        value = tf.io.decode_raw(value, tf.uint8)
    elif isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value)
    else:
        return value
    dims = [
        shape[0] if d == "H" else shape[1] if d == "W" else (-1 if d is None else d)
        for d in f.shape
    ]
    return tf.reshape(value, tf.stack([tf.cast(d, tf.int64) for d in dims])) if dims else value


def dataset(artifact: Artifact, split: str, *, ragged: bool = False, task: Any = None):
    """A tf.data.Dataset of (image, target) for one split.

    Images come back with their dtype from artifact.json and a static shape when the
    artifact declares one ``image_shape`` (``ragged=True`` keeps them per-image instead).
    Targets are a dict of the task's feature tensors (a bare tensor for a one-feature task:
    classification's int64 label).
    """
    tf = _tf()
    features = _features(task)
    dtype = tf.as_dtype(artifact.properties["dtype"])
    shape = artifact.properties.get("image_shape")
    spec = _parse_spec(tf, features)

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        image = tf.reshape(tf.io.decode_raw(ex[IMAGE], dtype), ex[SHAPE])
        if shape and not ragged:
            image = tf.ensure_shape(image, shape)
        target = {f.name: _target_tensor(tf, f, ex[f.name], ex[SHAPE]) for f in features}
        return image, bare(target, features)

    files = split_files(artifact, split)
    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
