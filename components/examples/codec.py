"""The record codec of ``Examples`` artifacts: one tf.train.Example per image.

A record holds ``image`` (the pixels as raw bytes; dtype from artifact.json: ``uint8`` raw,
``float32`` transformed), ``shape`` ([H, W, C], so images of any size fit) and the target
features its task declares (:attr:`Task.target_features`): classification's ``label``
(int64), segmentation's ``mask`` (H×W uint8 bytes), detection's ``boxes``/``classes``/...

Targets travel as **columns**: feature name -> values of a batch, stacked ``(N, ...)`` for a
fixed per-record shape, a 1-D object array of per-record arrays otherwise. A task with a
single target feature may pass that column bare (classification: the labels array), and
gets it back bare (:func:`bare`).

Encoding fills a byte template per batch (every record of a batch has one image shape):
about 10× faster than building protos. Decoding with :func:`parse_record` checks a record
and says what is wrong with it (the dead-letter reason).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from convflow.components.targets import TargetFeature

IMAGE, SHAPE, LABEL = "image", "shape", "label"
DTYPES = ("uint8", "float32")
#: classification's record target: one int64 class id.
LABEL_FEATURES = (TargetFeature(LABEL, "int64", ()),)


class RejectedRecord(ValueError):
    """A record that cannot become a valid image; its message is the dead-letter reason."""


def columns(targets: Any, features: Sequence[TargetFeature]) -> dict[str, Any]:
    """Targets as feature columns; a bare column is accepted for a one-feature task."""
    if isinstance(targets, Mapping):
        missing = [f.name for f in features if f.name not in targets]
        if missing:
            raise ValueError(f"targets lack feature(s) {missing}; got {sorted(targets)}")
        return {f.name: targets[f.name] for f in features}
    if len(features) != 1:
        raise ValueError(f"targets must be a mapping of {[f.name for f in features]}")
    return {features[0].name: targets}


def bare(cols: Mapping[str, Any], features: Sequence[TargetFeature]) -> Any:
    """The inverse of :func:`columns`: a one-feature task's column comes back bare."""
    return cols[features[0].name] if len(features) == 1 else dict(cols)


def take(cols: Mapping[str, Any], index) -> dict[str, Any]:
    """Rows ``index`` (an int array or slice) of every column."""
    return {k: v[index] for k, v in cols.items()}


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


def _float_feature(values) -> bytes:
    # Feature.float_list (field 2) -> FloatList.value (field 1, packed little-endian float32)
    return _field(2, _field(1, np.asarray(values, "<f4").tobytes()))


def _bytes_feature(value: bytes) -> bytes:
    # Feature.bytes_list (field 1) -> BytesList.value (field 1)
    return _field(1, _field(1, value))


def feature_entry(feature: TargetFeature, value) -> bytes:
    """The serialized map entry of one target feature of one record."""
    array = np.asarray(value)
    if feature.dtype == "int64":
        return _entry(feature.name, _int64_feature(array.ravel()))
    if feature.dtype == "float32":
        return _entry(feature.name, _float_feature(array.ravel()))
    return _entry(feature.name, _bytes_feature(np.ascontiguousarray(array, np.uint8).tobytes()))


def _target_entries(cols: Mapping[str, Any], features: Sequence[TargetFeature], n: int):
    """Per record, the joined entries of its target features."""
    per_feature = []
    for f in features:
        column = cols[f.name]
        if f.shape == () and f.dtype == "int64":  # labels: a handful of distinct values
            column = np.asarray(column)
            cache = {int(v): feature_entry(f, v) for v in np.unique(column)}
            per_feature.append([cache[int(v)] for v in column])
        else:
            per_feature.append([feature_entry(f, column[i]) for i in range(n)])
    return [b"".join(parts) for parts in zip(*per_feature, strict=True)] if features else [b""] * n


def encode_batch(
    images: np.ndarray, targets: Any, features: Sequence[TargetFeature] = LABEL_FEATURES
) -> list[bytes]:
    """Serializes ``(N, H, W, C)`` images and their targets as tf.train.Examples.

    Args:
        images: one batch of same-shape images, uint8 or float32.
        targets: the batch's target columns (or the bare column of a one-feature task).
        features: the task's :attr:`Task.target_features`.

    Returns:
        N serialized records, the same bytes the protobuf API would write.
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
    tails = _target_entries(columns(targets, features), features, n)
    buf = images.tobytes()
    fixed = len(image_head) + size + len(shape_entry)
    return [
        b"".join(
            (
                b"\n",
                _varint(fixed + len(tails[i])),
                image_head,
                buf[i * size : (i + 1) * size],
                shape_entry,
                tails[i],
            )
        )
        for i in range(n)
    ]


def encode(image: np.ndarray, target: Any, features=LABEL_FEATURES) -> bytes:
    """Serializes one H×W×C image and its target (a label, or a feature mapping)."""
    mapping = isinstance(target, Mapping)
    batch = {k: _one(v) for k, v in target.items()} if mapping else _one(target)
    return encode_batch(image[None], batch, features)[0]


def _one(value) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 0 or array.dtype != object:
        return array[None]
    out = np.empty(1, object)
    out[0] = array
    return out


def _feature_values(feats, f: TargetFeature, image_shape) -> np.ndarray:
    """One record's target feature as an array of its declared shape; raises RejectedRecord."""
    if f.name not in feats:
        raise RejectedRecord(f"missing feature {f.name!r}")
    feature = feats[f.name]
    if f.dtype == "int64":
        values = np.asarray(feature.int64_list.value, np.int64)
    elif f.dtype == "float32":
        values = np.asarray(feature.float_list.value, np.float32)
    else:
        raw = feature.bytes_list.value
        values = np.frombuffer(raw[0], np.uint8) if len(raw) == 1 else np.zeros(0, np.uint8)
    shape = f.resolve(image_shape, len(values))
    if math.prod(shape) != len(values):
        if f.name == LABEL and f.shape == ():
            raise RejectedRecord(f"{len(values)} labels; expected 1")
        raise RejectedRecord(f"{f.name}: {len(values)} values do not fit shape {list(shape)}")
    return values.reshape(shape)


def parse_record(
    record: bytes,
    dtype: str,
    channels: int | None,
    num_classes: int | None,
    task: Any = None,
):
    """Decodes and checks one serialized tf.train.Example (None skips that check).

    Args:
        task: the :class:`Task` whose target features the record carries (None:
            classification's ``label``).

    Returns:
        ``(image (H, W, C) array, target)``; the target is bare for a one-feature task.

    Raises:
        RejectedRecord: naming what is wrong with the record.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2  # the protobuf classes, not TF's runtime

    features = task.target_features if task is not None else LABEL_FEATURES
    try:
        feats = example_pb2.Example.FromString(record).features.feature
    except DecodeError as e:
        raise RejectedRecord(f"not a tf.train.Example ({e})") from None
    for key in (IMAGE, SHAPE, *(f.name for f in features)):
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
    target = {f.name: _feature_values(feats, f, shape) for f in features}
    reason = _check_target(task, target, shape, num_classes)
    if reason:
        raise RejectedRecord(reason)
    if len(features) == 1 and features[0].shape == ():
        return image, target[features[0].name].item()
    return image, bare(target, features)


def label_reason(label: int, num_classes: int | None) -> str | None:
    """Why a class id is unusable (outside ``[0, num_classes)``), or None."""
    if num_classes is not None and not 0 <= label < num_classes:
        return f"label {label} outside [0, {num_classes})"
    return None


def _check_target(task, target, shape, num_classes) -> str | None:
    if task is not None:
        return task.check_target(target, shape, num_classes)
    return label_reason(int(target[LABEL]), num_classes)


def decode(record: bytes, dtype: str, task: Any = None) -> tuple[np.ndarray, Any]:
    """One record as (H×W×C image, target), unchecked against channels or classes."""
    return parse_record(record, dtype, None, None, task)
