"""The ingest step's work: IDX files, a TFDS dataset or an image folder -> raw Examples.

Output: ``RawExamples`` with train/validation/test TFRecord shards (uint8 H×W×C images, the
task's targets) and :class:`ExamplesInfo` properties.
"""

from __future__ import annotations

import json

import numpy as np
from convflow.components import examples
from convflow.components.base import ComponentError, Context
from convflow.components.examples import ExamplesInfo
from convflow.components.ingest import box_ingest, folder, idx, mask_ingest, tfds_source
from convflow.components.ingest.spec import BOX_SOURCES, MASK_SOURCES, REJECTED_FILE, Params
from convflow.components.ingest.split import maybe_stack, stratified_sample, stratified_split, take


def _read_source(p: Params, ctx: Context):
    """Returns (class names, {split: (images, labels)}, rejected, extra properties)."""
    if p.source == "idx":
        names = list(p.idx.class_names)
        rejected, splits = [], {}
        for split, (im, lb) in {
            "train": (p.idx.train_images, p.idx.train_labels),
            "test": (p.idx.test_images, p.idx.test_labels),
        }.items():
            images, labels, bad = idx.read_pair(im, lb, len(names))
            splits[split] = (images, labels)
            rejected += bad
        return names, splits, rejected, {}
    if p.source == "tfds":
        names, splits = tfds_source.read(
            p.tfds_name, p.tfds_data_dir, p.tfds_download, ctx.progress
        )
        return names, splits, [], {}
    return folder.read(p, ctx.progress)


def _carries(task, p: Params, feature: str, sources, what: str) -> bool:
    """Whether the task's records hold ``feature`` (boxes, mask); then the source must be one
    of ``sources``, the ones that read ``what`` (boxes, masks)."""
    if not any(f.name == feature for f in task.target_features):
        return False
    if p.source not in sources:
        raise ComponentError(
            f"ingest.source={p.source!r} has no {what}; a {task.name} pipeline reads one of "
            f"{', '.join(sources)}"
        )
    return True


def _box_targets(splits: dict, task) -> dict:
    """Per-record BoxTargets -> the task's target columns."""
    from convflow.components.tasks.detection import columns_of

    return {s: (images, columns_of(targets)) for s, (images, targets) in splits.items()}


def _carve(splits: dict, p: Params) -> dict:
    """Makes train/validation/test: test and validation carved from train when missing."""
    if "all" in splits:
        splits["train"] = splits.pop("all")
    if "test" not in splits:
        images, labels = splits["train"]
        keep, test = stratified_split(labels, p.test_fraction, p.seed)
        splits["train"] = (take(images, keep), labels[keep])
        splits["test"] = (take(images, test), labels[test])
    if "validation" not in splits:
        images, labels = splits["train"]
        keep, val = stratified_split(labels, p.validation_fraction, p.seed + 1)
        splits["train"] = (take(images, keep), labels[keep])
        splits["validation"] = (take(images, val), labels[val])
    if p.max_examples:
        for s, (images, labels) in splits.items():
            pick = stratified_sample(labels, p.max_examples, p.seed + 2)
            splits[s] = (take(images, pick), labels[pick])
    return {s: (maybe_stack(splits[s][0]), splits[s][1]) for s in examples.SPLITS if s in splits}


def rejected_count(rejected: list[dict]) -> int:
    """Records rejected; an aggregated rejection (missing IDX records) carries a count."""
    return sum(int(r.get("count", 1)) for r in rejected)


def _check_rejections(rejected: list[dict], accepted: int, p: Params, ctx: Context) -> None:
    # Kept in work_dir too: the output directory is discarded when the step fails.
    lines = "".join(json.dumps(r) + "\n" for r in rejected)
    for path in (ctx.outputs["examples"].path / REJECTED_FILE, ctx.work_dir / REJECTED_FILE):
        path.write_text(lines)
    count = rejected_count(rejected)
    total = accepted + count
    if rejected:
        ctx.tracker.log_artifact(ctx.work_dir / REJECTED_FILE)
    if accepted == 0:
        raise ComponentError(
            f"no usable images ({count} rejected, see {ctx.work_dir / REJECTED_FILE})"
        )
    share = count / total
    if share > p.max_rejected_fraction:
        raise ComponentError(
            f"{count:,} of {total:,} records rejected ({share:.1%}), above "
            f"ingest.max_rejected_fraction={p.max_rejected_fraction}; reasons in "
            f"{ctx.work_dir / REJECTED_FILE}"
        )


def run(ctx: Context) -> None:
    """Reads the configured source and writes train/validation/test TFRecord shards.

    Raises:
        ComponentError: no usable image, or more rejected records than
            ``ingest.max_rejected_fraction`` allows.
    """
    p: Params = ctx.params
    task = ctx.task
    out = ctx.outputs["examples"]
    boxes = _carries(task, p, "boxes", BOX_SOURCES, "boxes")
    masks = _carries(task, p, "mask", MASK_SOURCES, "masks")
    if boxes or masks:
        reader = box_ingest if boxes else mask_ingest
        names, splits, rejected = reader.read(p, ctx.progress)
        extra = {}
    else:
        names, splits, rejected, extra = _read_source(p, ctx)
    accepted = sum(len(labels) for _, labels in splits.values())
    _check_rejections(rejected, accepted, p, ctx)
    if boxes:
        splits = _box_targets(box_ingest.carve(splits, p), task)
    else:
        splits = mask_ingest.carve(splits, p) if masks else _carve(splits, p)
    entries, histogram = {}, {}
    for split, (images, labels) in ctx.progress(
        splits.items(), total=len(splits), desc="write shards"
    ):
        entries[split] = examples.write_split(
            out.path, split, images, labels, p.shard_size, task.target_features
        )
        cols = examples.codec.columns(labels, task.target_features)
        histogram[split] = task.class_histogram(cols, len(names)).tolist()
    shapes = {tuple(im.shape) for images, _ in splits.values() for im in images[:1]}
    uniform = (
        all(isinstance(images, np.ndarray) for images, _ in splits.values()) and len(shapes) == 1
    )
    ExamplesInfo(
        splits=entries,
        dtype="uint8",
        image_shape=next(iter(shapes)) if uniform else None,
        channels=next(int(im[0].shape[-1]) for im, _ in splits.values() if len(im)),
        class_names=tuple(names),
        task=task.name,
        class_histogram=histogram,
        rejected=rejected_count(rejected),
        source=p.source,
        notes=extra,
    ).write(out)
    ctx.log_metrics(
        {f"{s}_examples": e["count"] for s, e in entries.items()}
        | {"rejected": rejected_count(rejected)}
    )
