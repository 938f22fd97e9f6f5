"""The Apache Beam job: decode ingest shards, transform batches, write shards and statistics.

Elements are batches of up to ``batch_size`` same-shape images (one shard yields one batch per
image shape), so each transform is one vectorized keras.ops call per batch, never one Python
call per image. The transforms are the rows of the one transform table
(components/transforms.py), whose functions the served model's layers wrap; crops and
resizes also move each batch's targets, as the pipeline's task says.

The same job runs on every runner (the in-process DirectRunner, Beam's DaskRunner, Flink,
Spark, Dataflow), so it uses only what all of them support:

- the read step has one output of three element kinds (batches, dead letters, shard read
  counts) split by ``Filter``s, not a multi-output ``ParDo``: the DaskRunner merges tagged
  outputs into the main one;
- counts come from the data (dead letters, read and written records in the summary), not from
  the runner's metrics, which the DaskRunner does not report; the ``Metrics`` counters still
  show live on runners that have a UI;
- no side inputs and no ``CombineGlobally`` defaults (which are side inputs): the DaskRunner
  recomputes a side input's whole upstream inside every task that reads it. ``standardize``
  therefore runs as two passes, an analyze job over the training split, then the main job with
  the constants as plain values (tf.Transform's analyze / transform split);
- every branch ends in the one summary step, because the DaskRunner computes the graph of the
  last transform only;
- moments are merged in a fixed order (by split, shard, part), so float sums, and with them
  the Statistics artifact's fingerprint, do not depend on how a runner groups elements.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
from dataclasses import dataclass

import apache_beam as beam
import keras
import numpy as np
from apache_beam.metrics.metric import Metrics
from convflow.components import tasks, transforms
from convflow.components.base import ComponentError
from convflow.components.examples import LABEL, encode_batch
from convflow.components.preprocess.records import decode_records, read_records
from convflow.components.preprocess.stats import MergeMoments, Moments
from convflow.components.transforms import CROP, GCN, LCN, RESIZE, SCALE, STANDARDIZE

NAMESPACE = "preprocess"
REJECTED = "rejected"
SUMMARY_FILE = "_summary.json"
ANALYZE_FILE = "_analyze.json"


@dataclass
class Batch:
    """One Beam element: same-shape images of one split, from one input shard.

    ``targets`` are the task's target columns (examples/codec.py); a bare array is
    classification's ``label`` column.
    """

    split: str
    shard: int
    part: int
    images: np.ndarray  # (N, H, W, C)
    targets: dict[str, np.ndarray]

    def __post_init__(self):
        if not isinstance(self.targets, dict):
            self.targets = {LABEL: np.asarray(self.targets)}

    @property
    def labels(self) -> np.ndarray:
        """The ``label`` column (classification's targets)."""
        return self.targets[LABEL]


class BatchCoder(beam.coders.Coder):
    """Pickles batches, but sizes them from ``nbytes``.

    The SDK estimates the byte size of sampled elements for its metrics; with the default
    coder that means pickling every 30 MB batch once more per step.
    """

    def encode(self, batch: Batch) -> bytes:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Batch:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, batch: Batch) -> int:
        return batch.images.nbytes + sum(v.nbytes for v in batch.targets.values()) + 64

    def to_type_hint(self):
        return Batch


beam.coders.registry.register_coder(Batch, BatchCoder)


@dataclass(frozen=True)
class JobSpec:
    """Everything the job needs, resolved by the component (plain values, so it pickles).

    Attributes:
        tasks: ``(split, shard index, path)`` per input shard.
        out_dir: where the output shards go.
        summary_path: where the job writes its statistics summary (JSON).
        rejected_path: where dead letters go, one JSON object per line.
        dtype: input pixel dtype, ``uint8`` or ``float32``.
        channels: the channel count every image must have.
        num_classes: class ids must lie in ``[0, num_classes)``; None skips the check.
        steps: transform names after scaling, in order (rows of transforms.TRANSFORMS).
        transform: transform name -> its keyword settings (transforms.settings_of).
        batch_size: images per element.
        task: the pipeline's task name; its targets travel with the images.
    """

    tasks: tuple[tuple[str, int, str], ...]
    out_dir: str
    summary_path: str
    rejected_path: str
    dtype: str
    channels: int
    num_classes: int | None
    steps: tuple[str, ...]
    transform: dict
    batch_size: int
    task: str = tasks.DEFAULT


@dataclass
class Shard:
    """The serialized records of one input shard (an element before decoding)."""

    split: str
    shard: int
    file: str
    records: np.ndarray  # object array of bytes


@dataclass(frozen=True)
class DeadLetter:
    """A record the job could not use, and why (one line of ``rejected.jsonl``)."""

    split: str
    file: str
    record: int
    reason: str


@dataclass(frozen=True)
class ShardRead:
    """How many records one input shard held (counted from the data, on every runner)."""

    split: str
    shard: int
    records: int


class DecodeRecords(beam.DoFn):
    """:class:`Shard` -> batches of valid same-shape images and a :class:`DeadLetter` per bad
    record (split apart by :class:`SplitByKind`)."""

    def __init__(
        self,
        dtype: str,
        channels: int,
        num_classes: int | None,
        batch_size: int,
        task: str = tasks.DEFAULT,
    ):
        self._decode = functools.partial(
            decode_records,
            dtype=dtype,
            channels=channels,
            num_classes=num_classes,
            task=tasks.get(task),
        )
        self._batch_size = batch_size
        self._read = Metrics.counter(NAMESPACE, "records_read")
        self._rejected = Metrics.counter(NAMESPACE, "records_rejected")

    def process(self, shard: Shard):
        self._read.inc(len(shard.records))
        yield ShardRead(shard.split, shard.shard, len(shard.records))
        groups, rejected = self._decode(shard.records)
        for index, reason in rejected:
            self._rejected.inc()
            yield DeadLetter(shard.split, shard.file, int(index), reason)
        part = 0
        for shape in sorted(groups):
            _, images, targets = groups[shape]
            for start in range(0, len(images), self._batch_size):
                rows = slice(start, start + self._batch_size)
                cut = {k: v[rows] for k, v in targets.items()}
                yield Batch(shard.split, shard.shard, part, images[rows], cut)
                part += 1


class ReadAndDecodeShard(DecodeRecords):
    """``(split, index, path)`` -> batches; bad records and an unreadable tail -> dead letters.

    Reading and decoding are one DoFn, so the shard's raw bytes never cross a stage
    boundary (the runner would pickle them).
    """

    def process(self, task: tuple[str, int, str]):
        split, shard, path = task
        records, damage = read_records(path)
        if damage:
            self._rejected.inc()
            yield DeadLetter(split, os.path.basename(path), len(records), damage)
        yield from super().process(Shard(split, shard, os.path.basename(path), records))


def _is(element, kind) -> bool:
    return isinstance(element, kind)


class SplitByKind(beam.PTransform):
    """The read step's one output -> ``{"batches", "rejected", "reads"}``.

    Three ``Filter``s rather than a multi-output ParDo, which Beam's DaskRunner does not keep
    apart (it merges tagged outputs into the main output).
    """

    def expand(self, elements):
        return {
            "batches": elements | "Batches" >> beam.Filter(_is, Batch).with_output_types(Batch),
            REJECTED: elements | "DeadLetters" >> beam.Filter(_is, DeadLetter),
            "reads": elements | "ShardReads" >> beam.Filter(_is, ShardRead),
        }


def _apply(batch: Batch, name: str, settings: dict, task: str) -> Batch:
    """One table row on one batch: the images, and the targets when the row is geometric."""
    fn, _ = transforms.resolve(name, settings)
    images = keras.ops.convert_to_numpy(fn(batch.images))
    targets = batch.targets
    if transforms.TRANSFORMS[name].geometric:
        height, width = batch.images.shape[1:3]
        window = transforms.window(name, settings, height, width)
        targets = tasks.get(task).move_targets(targets, window)
    return dataclasses.replace(batch, images=images, targets=targets)


class ApplyTransform(beam.PTransform):
    """Applies one row of the transform table to every batch (and moves its targets)."""

    def __init__(self, name: str, settings: dict | None = None, task: str = tasks.DEFAULT):
        super().__init__()
        self._args = (name, dict(settings or {}), task)

    def expand(self, batches):
        return batches | beam.Map(_apply, *self._args).with_output_types(Batch)


class ScaleToUnit(ApplyTransform):
    def __init__(self, task: str = tasks.DEFAULT):
        super().__init__(SCALE, task=task)


class CropToSquare(ApplyTransform):
    def __init__(self, task: str = tasks.DEFAULT):
        super().__init__(CROP, task=task)


class ResizeImages(ApplyTransform):
    def __init__(self, size: int, interpolation: str, antialias: bool, task=tasks.DEFAULT):
        settings = {"size": size, "interpolation": interpolation, "antialias": antialias}
        super().__init__(RESIZE, settings, task)


class GlobalContrastNormalize(ApplyTransform):
    def __init__(self, scale: float, lam: float, eps: float, task: str = tasks.DEFAULT):
        super().__init__(GCN, {"scale": scale, "lam": lam, "eps": eps}, task)


class LocalContrastNormalize(ApplyTransform):
    def __init__(self, kernel_size: int, sigma: float, floor: float, task=tasks.DEFAULT):
        settings = {"kernel_size": kernel_size, "sigma": sigma, "floor": floor}
        super().__init__(LCN, settings, task)


def _is_train(batch: Batch) -> bool:
    return batch.split == "train"


def _moments(
    batch: Batch, num_classes: int = 0, task: str = tasks.DEFAULT
) -> tuple[tuple, Moments]:
    """``(origin, moments)``: the origin orders the merge (see :class:`MergeMoments`)."""
    origin = (batch.split, batch.shard, batch.part)
    histogram = tasks.get(task).class_histogram(batch.targets, num_classes)
    return origin, Moments.of(batch.images, histogram, num_classes)


def channel_stats(moments: Moments) -> dict:
    """Standardization constants from training moments; a constant channel keeps std 1."""
    if moments.total is None:
        raise ComponentError("standardize needs training images, but the train split is empty")
    std = np.where(moments.std > 0, moments.std, 1.0)
    return {"channel_mean": moments.mean.tolist(), "channel_std": std.tolist()}


class TrainChannelStats(beam.PTransform):
    """The analyze pass: per-channel mean/std over the training split only (one element)."""

    def expand(self, batches):
        return (
            batches
            | "TrainOnly" >> beam.Filter(_is_train)
            | "Moments" >> beam.Map(_moments)
            # Without defaults: a default is a side input, which the DaskRunner recomputes.
            | "Merge" >> beam.CombineGlobally(MergeMoments()).without_defaults()
            | "Constants" >> beam.Map(channel_stats)
        )


def standardize_settings(stats: dict) -> dict:
    """The standardize row's settings from :func:`channel_stats`."""
    return {"mean": stats["channel_mean"], "std": stats["channel_std"]}


def _standardize(batch: Batch, stats: dict) -> Batch:
    return _apply(batch, STANDARDIZE, standardize_settings(stats), tasks.DEFAULT)


class StandardizeChannels(beam.PTransform):
    """Applies the training-split constants (plain values from the analyze pass)."""

    def __init__(self, stats: dict):
        super().__init__()
        self._stats = stats

    def expand(self, batches):
        return batches | beam.Map(_standardize, self._stats).with_output_types(Batch)


class WriteBatch(beam.DoFn):
    """Writes one batch as one TFRecord file; yields its manifest entry."""

    def __init__(self, out_dir: str, task: str = tasks.DEFAULT):
        self._out_dir = out_dir
        self._features = tasks.get(task).target_features
        self._written = Metrics.counter(NAMESPACE, "records_written")

    def process(self, batch: Batch):
        import tensorflow as tf

        name = f"{batch.split}-{batch.shard:05d}-{batch.part:05d}.part"
        records = encode_batch(batch.images, batch.targets, self._features)
        with tf.io.TFRecordWriter(os.path.join(self._out_dir, name)) as writer:
            for record in records:
                writer.write(record)
        self._written.inc(len(records))
        entry = {"name": name, "count": len(records)}
        yield ("file", [batch.split, batch.shard, batch.part], entry)


def _keyed(batch: Batch, stage: str, num_classes: int, task: str):
    return (batch.split, stage), _moments(batch, num_classes, task)


def _summary_item(kv):
    (split, stage), moments = kv
    return ("moments", [split, stage], moments.to_json())


def _dead_item(dead: DeadLetter):
    return ("dead", [dead.split, dead.file, dead.record], dead.reason)


def _read_item(read: ShardRead):
    return ("read", [read.split, read.shard], read.records)


def _write_json(keyed_items, path: str) -> None:
    """Writes the grouped items, sorted, so the file does not depend on the runner."""
    import tensorflow as tf

    _, items = keyed_items
    items = sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(items, f)


def _collect(pcoll, path: str, label: str):
    """Writes all elements of ``pcoll`` to one JSON file (no file when there are none).

    A GroupByKey on one key, not ``combiners.ToList``: its default for an empty input is a
    side input (see the module docstring).
    """
    return (
        pcoll
        | f"Key{label}" >> beam.Map(lambda item: (label, item))
        | f"Group{label}" >> beam.GroupByKey()
        | f"Write{label}" >> beam.Map(_write_json, path)
    )


def _read_batches(pipeline, spec: JobSpec, shards):
    read = ReadAndDecodeShard(
        spec.dtype, spec.channels, spec.num_classes, spec.batch_size, spec.task
    )
    return (
        pipeline
        | "ListShards" >> beam.Create(list(shards))
        | "ReadShards" >> beam.ParDo(read)
        | "SplitByKind" >> SplitByKind()
    )


def transform_steps(batches, spec: JobSpec, stats: dict | None = None):
    """Scale, then the configured steps in order: each a labelled PTransform of its table row.

    ``standardize`` (the fitted row) needs ``stats`` (from the analyze pass); without them
    the steps stop before it, which is what the analyze pass measures.
    """
    x = batches
    for name in (SCALE, *spec.steps):
        row = transforms.TRANSFORMS[name]
        if row.fitted:
            if stats is not None:
                x = x | row.label >> StandardizeChannels(stats)
        else:
            x = x | row.label >> ApplyTransform(name, spec.transform.get(name, {}), spec.task)
    return x


def build_analyze(pipeline: beam.Pipeline, spec: JobSpec) -> None:
    """The analyze pass: the training split through the steps before ``standardize``."""
    train = [t for t in spec.tasks if t[0] == "train"]
    batches = _read_batches(pipeline, spec, train)["batches"]
    stats = transform_steps(batches, spec) | "AnalyzeTrainChannels" >> TrainChannelStats()
    _collect(stats, analyze_path(spec), "Stats")


def build(pipeline: beam.Pipeline, spec: JobSpec, stats: dict | None = None) -> None:
    """Adds the whole job to ``pipeline``; ``stats`` are the analyze pass's constants."""
    k = spec.num_classes or 0
    read = _read_batches(pipeline, spec, spec.tasks)
    batches = read["batches"]
    out = transform_steps(batches, spec, stats)
    moments = (
        (
            batches | "InputMoments" >> beam.Map(_keyed, "input", k, spec.task),
            out | "OutputMoments" >> beam.Map(_keyed, "output", k, spec.task),
        )
        | "FlattenMoments" >> beam.Flatten()
        | "MergeMoments" >> beam.CombinePerKey(MergeMoments())
        | "MomentsItems" >> beam.Map(_summary_item)
    )
    files = out | "WriteShards" >> beam.ParDo(WriteBatch(spec.out_dir, spec.task))
    dead = read[REJECTED] | "DeadItems" >> beam.Map(_dead_item)
    reads = read["reads"] | "ReadItems" >> beam.Map(_read_item)
    # Every branch ends here: the DaskRunner computes only the last transform's graph.
    summary = (moments, files, dead, reads) | "FlattenSummary" >> beam.Flatten()
    _collect(summary, spec.summary_path, "Summary")


def analyze_path(spec: JobSpec) -> str:
    return os.path.join(os.path.dirname(spec.summary_path), ANALYZE_FILE)
