"""The Apache Beam job: decode ingest shards, transform batches, write shards and statistics.

Elements are batches of up to ``batch_size`` same-shape images (one shard yields one batch per
image shape), so each transform is one vectorized keras.ops call per batch, never one Python
call per image. The transforms are the functions in ``models/layers/contrast.py``, the same
ones the served model's layers wrap.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pickle
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import apache_beam as beam
import keras
import numpy as np
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from convflow.components.examples import encode_batch
from convflow.components.preprocess.params import CROP, GCN, LCN, RESIZE, STANDARDIZE
from convflow.components.preprocess.records import decode_records, read_records
from convflow.components.preprocess.stats import MergeMoments, Moments
from convflow.models.layers import contrast

NAMESPACE = "preprocess"
REJECTED = "rejected"
SUMMARY_FILE = "_summary.json"


@dataclass
class Batch:
    """One Beam element: same-shape images of one split, from one input shard."""

    split: str
    shard: int
    part: int
    images: np.ndarray  # (N, H, W, C)
    labels: np.ndarray  # (N,) int64


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
        return batch.images.nbytes + batch.labels.nbytes + 64

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
        num_classes: labels must lie in ``[0, num_classes)``; None skips the check.
        steps: transform names after scaling, in order.
        transform: keyword settings: size, interpolation, antialias, gcn, lcn.
        batch_size: images per element.
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


@dataclass
class Shard:
    """The serialized records of one input shard (an element before decoding)."""

    split: str
    shard: int
    file: str
    records: np.ndarray  # object array of bytes


class DecodeRecords(beam.DoFn):
    """:class:`Shard` -> batches of valid same-shape images; bad records -> ``rejected``."""

    def __init__(self, dtype: str, channels: int, num_classes: int | None, batch_size: int):
        self._decode = functools.partial(
            decode_records, dtype=dtype, channels=channels, num_classes=num_classes
        )
        self._batch_size = batch_size
        self._read = Metrics.counter(NAMESPACE, "records_read")
        self._rejected = Metrics.counter(NAMESPACE, "records_rejected")

    def process(self, shard: Shard):
        self._read.inc(len(shard.records))
        groups, rejected = self._decode(shard.records)
        for index, reason in rejected:
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(REJECTED, _dead(shard.split, shard.file, index, reason))
        part = 0
        for shape in sorted(groups):
            _, images, labels = groups[shape]
            for start in range(0, len(labels), self._batch_size):
                end = start + self._batch_size
                yield Batch(shard.split, shard.shard, part, images[start:end], labels[start:end])
                part += 1


class ReadAndDecodeShard(DecodeRecords):
    """``(split, index, path)`` -> batches; bad records and an unreadable tail -> ``rejected``.

    Reading and decoding are one DoFn, so the shard's raw bytes never cross a stage
    boundary (the runner would pickle them).
    """

    def process(self, task: tuple[str, int, str]):
        split, shard, path = task
        records, damage = read_records(path)
        if damage:
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(REJECTED, _dead(split, path, len(records), damage))
        yield from super().process(Shard(split, shard, os.path.basename(path), records))


def _dead(split: str, path: str, index: int, reason: str) -> dict:
    return {"split": split, "file": os.path.basename(path), "record": index, "reason": reason}


def _map_images(batch: Batch, fn) -> Batch:
    return dataclasses.replace(batch, images=keras.ops.convert_to_numpy(fn(batch.images)))


class _MapImages(beam.PTransform):
    """Applies one contrast.py function to the images of every batch."""

    def __init__(self, fn, **kwargs):
        super().__init__()
        self._fn = functools.partial(fn, **kwargs) if kwargs else fn

    def expand(self, batches):
        return batches | beam.Map(_map_images, self._fn).with_output_types(Batch)


class ScaleToUnit(_MapImages):
    def __init__(self):
        super().__init__(contrast.scale_to_unit)


class CropToSquare(_MapImages):
    def __init__(self):
        super().__init__(contrast.center_square_crop)


class ResizeImages(_MapImages):
    def __init__(self, size: int, interpolation: str, antialias: bool):
        super().__init__(
            contrast.resize, size=size, interpolation=interpolation, antialias=antialias
        )


class GlobalContrastNormalize(_MapImages):
    def __init__(self, scale: float, lam: float, eps: float):
        super().__init__(contrast.global_contrast_normalize, scale=scale, lam=lam, eps=eps)


class LocalContrastNormalize(_MapImages):
    def __init__(self, kernel_size: int, sigma: float, floor: float):
        super().__init__(
            contrast.local_contrast_normalize, kernel_size=kernel_size, sigma=sigma, floor=floor
        )


def _is_train(batch: Batch) -> bool:
    return batch.split == "train"


def _moments(batch: Batch, num_classes: int = 0) -> Moments:
    return Moments.of(batch.images, batch.labels, num_classes)


def channel_stats(moments: Moments) -> dict:
    """Standardization constants from training moments; a constant channel keeps std 1."""
    if moments.total is None:
        raise ValueError("standardize needs training images, but the train split is empty")
    std = np.where(moments.std > 0, moments.std, 1.0)
    return {"channel_mean": moments.mean.tolist(), "channel_std": std.tolist()}


class TrainChannelStats(beam.PTransform):
    """The analyze pass: per-channel mean/std over the training split only."""

    def expand(self, batches):
        return (
            batches
            | "TrainOnly" >> beam.Filter(_is_train)
            | "Moments" >> beam.Map(_moments)
            | "Merge" >> beam.CombineGlobally(MergeMoments())
            | "Constants" >> beam.Map(channel_stats)
        )


def _standardize(batch: Batch, stats: dict) -> Batch:
    fn = functools.partial(
        contrast.standardize, mean=stats["channel_mean"], std=stats["channel_std"]
    )
    return _map_images(batch, fn)


class StandardizeChannels(beam.PTransform):
    """Applies the training-split constants (a side input) to every split."""

    def __init__(self, stats):
        super().__init__()
        self._stats = stats

    def expand(self, batches):
        stats = beam.pvalue.AsSingleton(self._stats)
        return batches | beam.Map(_standardize, stats).with_output_types(Batch)


class WriteBatch(beam.DoFn):
    """Writes one batch as one TFRecord file; yields its manifest entry."""

    def __init__(self, out_dir: str):
        self._out_dir = out_dir
        self._written = Metrics.counter(NAMESPACE, "records_written")

    def process(self, batch: Batch):
        import tensorflow as tf

        name = f"{batch.split}-{batch.shard:05d}-{batch.part:05d}.part"
        with tf.io.TFRecordWriter(os.path.join(self._out_dir, name)) as writer:
            for record in encode_batch(batch.images, batch.labels):
                writer.write(record)
        self._written.inc(len(batch.labels))
        entry = {"name": name, "count": len(batch.labels)}
        yield ("file", [batch.split, batch.shard, batch.part], entry)


def _keyed(moments_batch: Batch, stage: str, num_classes: int):
    return (moments_batch.split, stage), _moments(moments_batch, num_classes)


def _summary_item(kv):
    (split, stage), moments = kv
    return ("moments", [split, stage], moments.to_json())


def _write_rejected(rejected: list[dict], path: str):
    """Writes the dead letters as JSON lines; yields ("rejected", [split], count) items."""
    import tensorflow as tf

    rejected = sorted(rejected, key=lambda r: (r["split"], r["file"], r["record"]))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rejected))
    counts = defaultdict(int)
    for r in rejected:
        counts[r["split"]] += 1
    for split, count in sorted(counts.items()):
        yield ("rejected", [split], count)


def _write_json(items: list, path: str) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(items, f)


def transform_steps(batches, spec: JobSpec):
    """Scale, then the configured steps in order, each a labelled PTransform."""
    t = spec.transform
    x = batches | "ScaleToUnit" >> ScaleToUnit()
    summary = []
    for step in spec.steps:
        if step == CROP:
            x = x | "CropToSquare" >> CropToSquare()
        elif step == RESIZE:
            x = x | "Resize" >> ResizeImages(t["size"], t["interpolation"], t["antialias"])
        elif step == GCN:
            x = x | "GlobalContrastNormalize" >> GlobalContrastNormalize(**t["gcn"])
        elif step == LCN:
            x = x | "LocalContrastNormalize" >> LocalContrastNormalize(**t["lcn"])
        elif step == STANDARDIZE:
            stats = x | "AnalyzeTrainChannels" >> TrainChannelStats()
            x = x | "Standardize" >> StandardizeChannels(stats)
            summary.append(stats | "StatsItem" >> beam.Map(lambda s: ("standardize", [], s)))
        else:
            raise ValueError(f"Unknown preprocess step {step!r}")
    return x, summary


def build(pipeline: beam.Pipeline, spec: JobSpec) -> None:
    """Adds the whole job to ``pipeline``."""
    k = spec.num_classes or 0
    read = ReadAndDecodeShard(spec.dtype, spec.channels, spec.num_classes, spec.batch_size)
    decoded = (
        pipeline
        | "ListShards" >> beam.Create(list(spec.tasks))
        | "ReadShards"
        >> beam.ParDo(read).with_output_types(Batch).with_outputs(REJECTED, main="batches")
    )
    batches, rejected = decoded.batches, decoded[REJECTED]
    out, summary = transform_steps(batches, spec)
    moments = (
        (
            batches | "InputMoments" >> beam.Map(_keyed, "input", k),
            out | "OutputMoments" >> beam.Map(_keyed, "output", k),
        )
        | "FlattenMoments" >> beam.Flatten()
        | "MergeMoments" >> beam.CombinePerKey(MergeMoments())
        | "MomentsItems" >> beam.Map(_summary_item)
    )
    files = out | "WriteShards" >> beam.ParDo(WriteBatch(spec.out_dir))
    rejected_counts = (
        rejected
        | "CollectRejected" >> beam.combiners.ToList()
        | "WriteRejected" >> beam.FlatMap(_write_rejected, spec.rejected_path)
    )
    (
        (moments, files, rejected_counts, *summary)
        | "FlattenSummary" >> beam.Flatten()
        | "CollectSummary" >> beam.combiners.ToList()
        | "WriteSummary" >> beam.Map(_write_json, spec.summary_path)
    )


def run(spec: JobSpec, options: Sequence[str]) -> tuple[list, dict[str, int]]:
    """Runs the job to completion.

    Returns:
        The summary items (moments, files, rejected counts, standardization constants) and
        the Beam metrics counters of the ``preprocess`` namespace.
    """
    pipeline = beam.Pipeline(options=PipelineOptions(list(options)))
    build(pipeline, spec)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(value or 0)
    with open(spec.summary_path) as f:
        return json.load(f), counters
