"""COCO detection metrics computed by pycocotools, the reference implementation.

Ground truth and detections are handed to ``pycocotools.cocoeval.COCOeval`` in memory, boxes
as COCO ``[x, y, w, h]`` pixels of each image; ignore boxes (COCO crowd, VOC difficult) become
``iscrowd=1`` regions, which COCOeval neither rewards nor penalizes a detection for matching.
Class index ``k`` is COCO category id ``k + 1`` (COCO ids start at 1).

Source: Lin et al. 2014, "Microsoft COCO: Common Objects in Context"; the metrics are
``stats[0..2]`` of ``COCOeval.summarize``: AP averaged over IoU 0.50:0.05:0.95, AP at 0.50,
AP at 0.75, all areas, at most 100 detections per image.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from convflow.components.boxes import BoxTargets, to_coco_xywh

MAP, MAP50, MAP75 = "map", "map50", "map75"


def coco_ground_truth(
    targets: Sequence[BoxTargets], sizes: Sequence[tuple[int, int]], class_names: Sequence[str]
) -> dict:
    """The COCO instances dict of the ground truth (image id = position, from 1)."""
    images, annotations = [], []
    for i, (t, (height, width)) in enumerate(zip(targets, sizes, strict=True), start=1):
        images.append({"id": i, "height": int(height), "width": int(width)})
        for box, cls, ignore in zip(
            to_coco_xywh(t.boxes, height, width), t.classes, t.ignore, strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(cls) + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(ignore),
                }
            )
    categories = [{"id": k + 1, "name": str(n)} for k, n in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_detections(detections: Sequence[dict], sizes: Sequence[tuple[int, int]]) -> list[dict]:
    """COCO result entries from per-image dicts of stored-convention ``boxes``, ``scores``,
    ``classes``."""
    results = []
    for i, (d, (height, width)) in enumerate(zip(detections, sizes, strict=True), start=1):
        xywh = to_coco_xywh(d["boxes"], height, width)
        for box, score, cls in zip(xywh, d["scores"], d["classes"], strict=True):
            results.append(
                {
                    "image_id": i,
                    "category_id": int(cls) + 1,
                    "bbox": [float(v) for v in box],
                    "score": float(score),
                }
            )
    return results


def run_cocoeval(gt: dict, results: list[dict]):
    """A finished ``COCOeval`` (evaluate, accumulate, summarize), or None with no detections.

    pycocotools prints its progress and table; that output is kept out of the pipeline's.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return None  # COCO.loadRes rejects an empty result list
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _class_ap(precision: np.ndarray) -> float:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else float("nan")


def evaluate_detections(
    targets: Sequence[BoxTargets],
    detections: Sequence[dict],
    sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """mAP@[.5:.95], mAP@0.5, mAP@0.75 and per-class AP by pycocotools.

    Args:
        targets: ground truth per image (stored convention).
        detections: per image ``{"boxes": (k, 4) stored convention, "scores": (k,),
            "classes": (k,)}``.
        sizes: (height, width) in pixels per image; boxes are scored in those pixels.
        class_names: C names; class k is category k + 1.

    Returns:
        ``({"map", "map50", "map75"}, {class name: {"ap", "ap50", "ground_truth"}})``. With no
        detections at all every AP is 0. A class without ground truth has AP NaN (COCO's -1),
        and is left out of the means, as COCOeval does.
    """
    gt = coco_ground_truth(targets, sizes, class_names)
    ev = run_cocoeval(gt, coco_detections(detections, sizes))
    counts = np.zeros(len(class_names), np.int64)
    for t in targets:
        np.add.at(counts, t.classes[~t.ignore], 1)
    if ev is None:
        summary = {MAP: 0.0, MAP50: 0.0, MAP75: 0.0}
        zero = [0.0 if c else float("nan") for c in counts]
        per_class = {
            n: {"ap": zero[k], "ap50": zero[k], "ground_truth": int(counts[k])}
            for k, n in enumerate(class_names)
        }
        return summary, per_class
    stats = [max(float(s), 0.0) if s != -1 else float("nan") for s in ev.stats[:3]]
    summary = dict(zip((MAP, MAP50, MAP75), stats, strict=True))
    # precision: (iou thresholds T, recall points R, classes K, area ranges A, max dets M);
    # area "all" is index 0, maxDets=100 the last.
    precision = ev.eval["precision"]
    iou50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    per_class = {
        name: {
            "ap": _class_ap(precision[:, :, k, 0, -1]),
            "ap50": _class_ap(precision[iou50, :, k, 0, -1]),
            "ground_truth": int(counts[k]),
        }
        for k, name in enumerate(class_names)
    }
    return summary, per_class
