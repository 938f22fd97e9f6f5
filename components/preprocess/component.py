"""The ``preprocess`` component: scale, crop, resize, GCN/LCN, standardize, on Apache Beam.

Beam, Keras and TensorFlow are imported when the step runs, not when the module is: the CLI
and the config checks import every component to read its params.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from convflow.components import examples
from convflow.components.base import (
    EXAMPLES,
    STATISTICS,
    Artifact,
    ComponentError,
    Context,
    component,
)
from convflow.components.examples import SPLITS, shard_name, split_files
from convflow.components.preprocess import runners
from convflow.components.preprocess.params import CROP, RESIZE, Params, check

if TYPE_CHECKING:
    from convflow.components.preprocess.beam_job import JobSpec

logger = logging.getLogger(__name__)

STATISTICS_FILE = "statistics.json"
SAMPLES_FILE = "samples.png"
REJECTED_FILE = "rejected.jsonl"


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


def _channels(source: Artifact) -> int:
    """The channel count every image must have: from image_shape, else the first record."""
    from convflow.components.preprocess import records

    shape = source.properties.get("image_shape")
    if shape:
        return int(shape[-1])
    for split in source.properties.get("splits", {}):
        for path in split_files(source, split):
            for record in records.read_records(path)[0]:
                try:
                    image, _ = examples.parse_record(record, source.properties["dtype"], None, None)
                except examples.RejectedRecord:
                    continue  # the job dead-letters it; keep looking for a readable one
                return int(image.shape[-1])
    raise ComponentError(f"{source.uri} holds no images to preprocess")


def _output_shape(params: Params, source: Artifact, channels: int) -> list[int]:
    if RESIZE in params.steps:
        return [params.size, params.size, channels]
    shape = source.properties.get("image_shape")
    if not shape:
        raise ComponentError(
            f"preprocess.steps={list(params.steps)!r} has no 'resize', but the input images "
            "differ in size (image_shape is null); add 'resize' so the output has one shape"
        )
    side = min(shape[:2])
    return [side, side, channels] if CROP in params.steps else list(shape)


def _transform_settings(params: Params) -> dict:
    return {
        "size": params.size,
        "interpolation": params.interpolation,
        "antialias": params.antialias,
        "gcn": dataclasses.asdict(params.gcn),
        "lcn": dataclasses.asdict(params.lcn),
    }


def _samples(spec: JobSpec, n: int) -> dict[str, np.ndarray] | None:
    """The first ``n`` valid training images: raw (after crop/resize), GCN and LCN."""
    import keras
    from convflow.components.preprocess import records
    from convflow.models.layers import contrast

    split = "train" if any(t[0] == "train" for t in spec.tasks) else spec.tasks[0][0]
    raw = []
    for _, _, path in (t for t in spec.tasks if t[0] == split):
        for record in records.read_records(path)[0]:  # a damaged tail is the job's to report
            try:
                image, _ = examples.parse_record(record, spec.dtype, spec.channels, None)
            except examples.RejectedRecord:
                continue
            x = contrast.scale_to_unit(image[None])
            if CROP in spec.steps:
                x = contrast.center_square_crop(x)
            if RESIZE in spec.steps:
                t = spec.transform
                x = contrast.resize(x, t["size"], t["interpolation"], t["antialias"])
            raw.append(keras.ops.convert_to_numpy(x)[0])
            if len(raw) == n:
                break
        if len(raw) == n:
            break
    if not raw:
        return None
    raw = np.stack(raw)
    gcn = contrast.global_contrast_normalize(raw, **spec.transform["gcn"])
    lcn = contrast.local_contrast_normalize(raw, **spec.transform["lcn"])
    return {
        "raw": raw,
        "GCN": keras.ops.convert_to_numpy(gcn),
        "LCN": keras.ops.convert_to_numpy(lcn),
    }


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


@component(
    name="preprocess",
    inputs={"examples": EXAMPLES},
    outputs={"examples": EXAMPLES, "statistics": STATISTICS},
    params=Params,
)
def preprocess(ctx: Context) -> None:
    """Runs the Beam job; writes float32 Examples and a Statistics artifact.

    The output Examples carry ``preprocess`` (steps, settings, training-split channel stats),
    which :func:`components.preprocess.build_preprocessor` turns into the served model's
    preprocessing layers. Records keep their order, except that within a shard of mixed
    image sizes they come out grouped by input size (batches hold one shape).

    The Statistics artifact holds ``statistics.json`` (per split: count, rejected, per-channel
    mean/std/min/max ``before`` — input pixel values as stored, 0..255 for uint8 — and
    ``after``, and the label histogram), ``samples.png`` (raw / GCN / LCN, as in the book's
    figure comparing GCN and LCN) and ``rejected.jsonl`` (one dead letter per line, with
    its reason).
    """
    from convflow.components.preprocess import beam_job, beam_run
    from convflow.components.preprocess.stats import plot_samples

    params: Params = ctx.params
    check(params)
    runners.check_runner(params.runner, params.beam_args)
    source = ctx.inputs["examples"]
    props = source.properties
    if props.get("dtype") not in ("uint8", "float32"):
        raise ComponentError(f"{source.uri}: dtype={props.get('dtype')!r}; expected uint8/float32")
    splits = [s for s in SPLITS if s in props.get("splits", {})]
    if "standardize" in params.steps and "train" not in splits:
        raise ComponentError(f"'standardize' needs a train split; {source.uri} has {splits}")
    channels = _channels(source)
    out_shape = _output_shape(params, source, channels)
    out_dir, stats_dir = ctx.outputs["examples"].path, ctx.outputs["statistics"].path
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    spec = beam_job.JobSpec(
        tasks=tuple((s, i, f) for s in splits for i, f in enumerate(split_files(source, s))),
        out_dir=str(out_dir),
        summary_path=str(ctx.work_dir / beam_job.SUMMARY_FILE),
        rejected_path=str(stats_dir / REJECTED_FILE),
        dtype=props["dtype"],
        channels=channels,
        num_classes=props.get("num_classes"),
        steps=tuple(params.steps),
        transform=_transform_settings(params),
        batch_size=params.batch_size,
    )
    start = time.perf_counter()
    items, counters = beam_run.run(spec, beam_options(params, len(spec.tasks)))
    seconds = time.perf_counter() - start

    moments = {tuple(k): v for kind, k, v in items if kind == "moments"}
    rejected = {k[0]: v for kind, k, v in items if kind == "rejected"}
    standard = next((v for kind, _, v in items if kind == "standardize"), {})
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
    out_splits = _publish_shards(out_dir, [(k, v) for kind, k, v in items if kind == "file"])
    statistics = {
        split: {
            "count": moments.get((split, "output"), {}).get("count", 0),
            "rejected": rejected.get(split, 0),
            "before": moments.get((split, "input"), {}),
            "after": moments.get((split, "output"), {}),
            "label_histogram": moments.get((split, "output"), {}).get("label_histogram", []),
        }
        for split in splits
    }
    (stats_dir / STATISTICS_FILE).write_text(json.dumps(statistics, indent=1))
    samples = _samples(spec, params.num_samples)
    if samples is not None:
        plot_samples(samples, stats_dir / SAMPLES_FILE)
    for name in (STATISTICS_FILE, SAMPLES_FILE, REJECTED_FILE):
        if (stats_dir / name).exists():
            ctx.tracker.log_artifact(stats_dir / name, artifact_path="statistics")

    ctx.outputs["examples"].properties.update(
        splits={s: out_splits.get(s, {"count": 0, "files": []}) for s in splits},
        dtype="float32",
        image_shape=out_shape,
        class_names=props.get("class_names"),
        num_classes=props.get("num_classes"),
        label_histogram={s: statistics[s]["label_histogram"] for s in splits},
        preprocess={
            "steps": list(params.steps),
            "input_dtype": props["dtype"],
            "channels": channels,
            **_transform_settings(params),
            "channel_mean": standard.get("channel_mean"),
            "channel_std": standard.get("channel_std"),
            "rejected": n_bad,
        },
    )
    ctx.outputs["statistics"].properties.update(
        splits={s: {k: statistics[s][k] for k in ("count", "rejected")} for s in splits},
        files=[STATISTICS_FILE, SAMPLES_FILE, REJECTED_FILE],
        beam_counters=counters,
    )
    ctx.log_metrics(
        {
            "images": n_good,
            "rejected": n_bad,
            "rejected_fraction": share,
            "seconds": seconds,
            "images_per_second": n_good / max(seconds, 1e-9),
        }
    )
