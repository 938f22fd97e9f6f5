"""The preprocess step's work: the transform table's steps on Apache Beam (book §12.2.1.1).

Input: ``RawExamples``. Outputs: ``TransformedExamples`` (float32 (size, size, C) images,
the task's targets moved with them, :class:`ExamplesInfo` with a :class:`TransformInfo`
the served model rebuilds its preprocessing from) and ``Statistics``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
from convflow.components import examples, tasks, transforms
from convflow.components.base import RAW_EXAMPLES, Artifact, ComponentError, Context
from convflow.components.examples import (
    SPLITS,
    ExamplesInfo,
    TransformInfo,
    shard_name,
    split_files,
)
from convflow.components.preprocess import beam_job, beam_run, records, runners
from convflow.components.preprocess.beam_job import JobSpec
from convflow.components.preprocess.spec import (
    REJECTED_FILE,
    SAMPLES_FILE,
    STATISTICS_FILE,
    Params,
    check,
)
from convflow.components.preprocess.stats import plot_samples
from convflow.components.transforms import CROP, GCN, LCN, RESIZE, SCALE

logger = logging.getLogger(__name__)


def beam_options(params: Params, num_shards: int = 1) -> list[str]:
    """Pipeline flags: runner settings first, so ``beam_args`` can override them.

    ``DirectRunner`` means Beam's in-process runner (never Prism, which downloads a binary);
    see :mod:`convflow.components.preprocess.runners` for the other runners.
    """
    flags = [f"--runner={runners.runner_flag(params.runner)}"]
    if runners.is_direct(params.runner):
        # in_memory runs in this process: one worker (more only draws a Beam warning).
        workers = params.direct_num_workers or os.cpu_count() or 1
        if params.direct_running_mode == "in_memory":
            workers = 1
        flags += [
            f"--direct_num_workers={workers}",
            f"--direct_running_mode={params.direct_running_mode}",
        ]
    if runners.is_dask(params.runner):
        flags += runners.dask_partitions(params.beam_args, num_shards)
    return [*flags, *params.beam_args]


def _channels(source: Artifact, info: ExamplesInfo, task) -> int:
    """The channel count every image must have: from the info, else the first record."""
    if info.channels:
        return info.channels
    for split in info.splits:
        for path in split_files(source, split):
            for record in records.read_records(path)[0]:
                try:
                    image, _ = examples.parse_record(record, info.dtype, None, None, task)
                except examples.RejectedRecord:
                    continue  # the job dead-letters it; keep looking for a readable one
                return int(image.shape[-1])
    raise ComponentError(f"{source.uri} holds no images to preprocess")


def _output_shape(params: Params, info: ExamplesInfo, channels: int) -> list[int]:
    if RESIZE in params.steps:
        return [params.size, params.size, channels]
    shape = info.image_shape
    if not shape:
        raise ComponentError(
            f"preprocess.steps={list(params.steps)!r} has no 'resize', but the input images "
            "differ in size (image_shape is null); add 'resize' so the output has one shape"
        )
    side = min(shape[:2])
    return [side, side, channels] if CROP in params.steps else list(shape)


def _samples(spec: JobSpec, n: int) -> dict[str, np.ndarray] | None:
    """The first ``n`` valid training images: raw (after scaling, crop, resize), GCN and LCN.

    The stages come from the transform table, as in the Beam job and the served model.
    """
    split = "train" if any(t[0] == "train" for t in spec.tasks) else spec.tasks[0][0]
    geometric = [s for s in spec.steps if transforms.TRANSFORMS[s].geometric]
    fns = [transforms.resolve(s, spec.transform[s])[0] for s in (SCALE, *geometric)]
    task = tasks.get(spec.task)
    raw = []
    for _, _, path in (t for t in spec.tasks if t[0] == split):
        for record in records.read_records(path)[0]:  # a damaged tail is the job's to report
            try:
                image, _ = examples.parse_record(record, spec.dtype, spec.channels, None, task)
            except examples.RejectedRecord:
                continue
            x = image[None]
            for fn in fns:
                x = fn(x)
            raw.append(keras.ops.convert_to_numpy(x)[0])
            if len(raw) == n:
                break
        if len(raw) == n:
            break
    if not raw:
        return None
    raw = np.stack(raw)
    columns = {"raw": raw}
    for name, title in ((GCN, "GCN"), (LCN, "LCN")):
        fn, _ = transforms.resolve(name, spec.transform[name])
        columns[title] = keras.ops.convert_to_numpy(fn(raw))
    return columns


def _settings(params: Params) -> dict[str, dict]:
    """Every non-fitted row's settings (the samples show GCN and LCN even when unused)."""
    return {n: t.settings(params) for n, t in transforms.TRANSFORMS.items() if not t.fitted}


def _publish_shards(out_dir: Path, files: list) -> dict[str, dict]:
    """Renames the job's part files to ``<split>-<i>-of-<n>.tfrecord`` in input order."""
    by_split: dict[str, list] = {}
    for (split, _shard, _part), entry in sorted((tuple(k), v) for k, v in files):
        by_split.setdefault(split, []).append(entry)
    splits = {}
    for split, entries in by_split.items():
        names = []
        for i, entry in enumerate(entries):
            names.append(shard_name(split, i, len(entries)))
            (out_dir / entry["name"]).rename(out_dir / names[-1])
        splits[split] = {"count": sum(e["count"] for e in entries), "files": names}
    return splits


def _job_spec(ctx: Context, info: ExamplesInfo, splits: list[str], channels: int) -> JobSpec:
    source = ctx.inputs["examples"]
    stats_dir = ctx.outputs["statistics"].path
    return JobSpec(
        tasks=tuple((s, i, f) for s in splits for i, f in enumerate(split_files(source, s))),
        out_dir=str(ctx.outputs["examples"].path),
        summary_path=str(ctx.work_dir / beam_job.SUMMARY_FILE),
        rejected_path=str(stats_dir / REJECTED_FILE),
        dtype=info.dtype,
        channels=channels,
        num_classes=info.num_classes or None,
        steps=tuple(ctx.params.steps),
        transform=_settings(ctx.params),
        batch_size=ctx.params.batch_size,
        task=ctx.task.name,
    )


def _check_input(ctx: Context) -> tuple[ExamplesInfo, list[str]]:
    params: Params = ctx.params
    try:
        check(params)
    except ValueError as e:
        raise ComponentError(str(e)) from None
    runners.check_runner(params.runner, params.beam_args)
    source = ctx.inputs["examples"]
    info = ExamplesInfo.of(source, expect=RAW_EXAMPLES)
    if info.dtype not in ("uint8", "float32"):
        raise ComponentError(f"{source.uri}: dtype={info.dtype!r}; expected uint8/float32")
    if info.task != ctx.task.name:
        raise ComponentError(
            f"{source.uri} holds {info.task} targets; this is a {ctx.task.name} pipeline"
        )
    splits = [s for s in SPLITS if s in info.splits]
    if "standardize" in params.steps and "train" not in splits:
        raise ComponentError(f"'standardize' needs a train split; {source.uri} has {splits}")
    return info, splits


def _rejections(items, splits, params: Params, stats_dir: Path) -> tuple[int, int, float]:
    """(rejected, kept, rejected share); fails past ``preprocess.max_rejected_fraction``."""
    moments = {tuple(k): v for kind, k, v in items if kind == "moments"}
    rejected = {k[0]: v for kind, k, v in items if kind == "rejected"}
    n_bad = sum(rejected.values())
    n_good = sum(moments.get((s, "input"), {}).get("count", 0) for s in splits)
    share = n_bad / max(1, n_bad + n_good)
    if n_bad:
        logger.warning(
            "preprocess: %d of %d records rejected (%.2f%%): %s",
            n_bad,
            n_bad + n_good,
            100 * share,
            dict(sorted(rejected.items())),
        )
    if share > params.max_rejected_fraction:
        raise ComponentError(
            f"{n_bad} of {n_bad + n_good} records rejected ({share:.2%}) > "
            f"preprocess.max_rejected_fraction={params.max_rejected_fraction}; reasons in "
            f"{stats_dir / REJECTED_FILE}"
        )
    return n_bad, n_good, share


def _statistics(items, splits) -> dict[str, dict]:
    moments = {tuple(k): v for kind, k, v in items if kind == "moments"}
    rejected = {k[0]: v for kind, k, v in items if kind == "rejected"}
    return {
        split: {
            "count": moments.get((split, "output"), {}).get("count", 0),
            "rejected": rejected.get(split, 0),
            "before": moments.get((split, "input"), {}),
            "after": moments.get((split, "output"), {}),
            "label_histogram": moments.get((split, "output"), {}).get("label_histogram", []),
        }
        for split in splits
    }


def _write_statistics(ctx: Context, spec: JobSpec, statistics: dict, counters: dict) -> None:
    stats_dir = ctx.outputs["statistics"].path
    (stats_dir / STATISTICS_FILE).write_text(json.dumps(statistics, indent=1))
    samples = _samples(spec, ctx.params.num_samples)
    if samples is not None:
        plot_samples(samples, stats_dir / SAMPLES_FILE)
    for name in (STATISTICS_FILE, SAMPLES_FILE, REJECTED_FILE):
        if (stats_dir / name).exists():
            ctx.tracker.log_artifact(stats_dir / name, artifact_path="statistics")
    ctx.outputs["statistics"].properties.update(
        splits={s: {k: v[k] for k in ("count", "rejected")} for s, v in statistics.items()},
        files=[STATISTICS_FILE, SAMPLES_FILE, REJECTED_FILE],
        beam_counters=counters,
    )


def _tuple(values) -> tuple[float, ...] | None:
    return tuple(values) if values is not None else None


def _value_range(statistics: dict) -> tuple[float, float] | None:
    after = statistics.get("train", {}).get("after", {})
    if "min" not in after:
        return None
    return float(min(after["min"])), float(max(after["max"]))


def _transform_info(spec: JobSpec, info: ExamplesInfo, items, statistics, n_bad: int):
    standard = next((v for kind, _, v in items if kind == "standardize"), {})
    return TransformInfo(
        steps=spec.steps,
        input_dtype=info.dtype,
        channels=spec.channels,
        settings={k: v for k, v in spec.transform.items() if k in spec.steps},
        rejected=n_bad,
        value_range=_value_range(statistics),
        channel_mean=_tuple(standard.get("channel_mean")),
        channel_std=_tuple(standard.get("channel_std")),
    )


def run(ctx: Context) -> None:
    """Runs the Beam job; writes TransformedExamples and a Statistics artifact.

    The output's :class:`TransformInfo` (steps, settings, training-split channel stats) is
    what the served model rebuilds its preprocessing from (serving/model.py). Records keep
    their order, except that within a shard of mixed image sizes they come out grouped by
    input size (batches hold one shape).

    The Statistics artifact holds ``statistics.json`` (per split: count, rejected, per-channel
    mean/std/min/max ``before`` — input pixel values as stored, 0..255 for uint8 — and
    ``after``, and the class histogram), ``samples.png`` (raw / GCN / LCN, as in the book's
    figure comparing GCN and LCN) and ``rejected.jsonl`` (one dead letter per line, with
    its reason).

    Raises:
        ComponentError: bad steps, wrong input kind or task, too many rejected records.
    """
    params: Params = ctx.params
    info, splits = _check_input(ctx)
    channels = _channels(ctx.inputs["examples"], info, ctx.task)
    out_shape = _output_shape(params, info, channels)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    spec = _job_spec(ctx, info, splits, channels)
    start = time.perf_counter()
    items, counters = beam_run.run(spec, beam_options(params, len(spec.tasks)))
    seconds = time.perf_counter() - start
    n_bad, n_good, share = _rejections(items, splits, params, ctx.outputs["statistics"].path)
    out_splits = _publish_shards(
        ctx.outputs["examples"].path, [(k, v) for kind, k, v in items if kind == "file"]
    )
    statistics = _statistics(items, splits)
    _write_statistics(ctx, spec, statistics, counters)
    dataclasses.replace(
        info,
        splits={s: out_splits.get(s, {"count": 0, "files": []}) for s in splits},
        dtype="float32",
        image_shape=tuple(out_shape),
        channels=channels,
        class_histogram={s: statistics[s]["label_histogram"] for s in splits},
        rejected=n_bad,
        transform=_transform_info(spec, info, items, statistics, n_bad),
        notes={},
    ).write(ctx.outputs["examples"])
    ctx.log_metrics(
        {
            "images": n_good,
            "rejected": n_bad,
            "rejected_fraction": share,
            "seconds": seconds,
            "images_per_second": n_good / max(seconds, 1e-9),
        }
    )
