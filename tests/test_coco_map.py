"""The evaluate step's mAP equals pycocotools run directly on the same detections."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from convflow.components.boxes import BoxTargets
from convflow.components.evaluate import coco_map
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

CLASSES = ["shirt", "shoe", "bag"]


def _scene(rng, n_images=30):
    """Pixel xywh ground truth and noisy detections (with misses, duplicates, false alarms)."""
    sizes, gts, dets = [], [], []
    for i in range(n_images):
        h, w = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        sizes.append((h, w))
        for _ in range(int(rng.integers(0, 4))):
            bw, bh = rng.uniform(5, w / 2), rng.uniform(5, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            cls = int(rng.integers(0, 3))
            crowd = int(rng.random() < 0.1)
            gts.append((i, cls, [x, y, bw, bh], crowd))
            if rng.random() < 0.8:
                jx, jy = rng.normal(0, 3, 2)
                box = [np.clip(x + jx, 0, w - bw), np.clip(y + jy, 0, h - bh), bw, bh]
                label = cls if rng.random() < 0.9 else (cls + 1) % 3
                dets.append((i, label, box, float(rng.random())))
        if rng.random() < 0.5:
            dets.append((i, int(rng.integers(0, 3)), [1.0, 1.0, 10.0, 10.0], float(rng.random())))
    return sizes, gts, dets


def _direct(tmp_path, sizes, gts, dets):
    """pycocotools on JSON files, the way its own README runs it."""
    gt = {
        "images": [{"id": i + 1, "height": h, "width": w} for i, (h, w) in enumerate(sizes)],
        "annotations": [
            {"id": k + 1, "image_id": i + 1, "category_id": c + 1, "bbox": b,
             "area": b[2] * b[3], "iscrowd": crowd}
            for k, (i, c, b, crowd) in enumerate(gts)
        ],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)],
    }  # fmt: skip
    results = [
        {"image_id": i + 1, "category_id": c + 1, "bbox": [float(v) for v in b], "score": s}
        for i, c, b, s in dets
    ]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "dt.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _stored(sizes, gts, dets):
    """The same data in the project's convention: normalized [y1, x1, y2, x2]."""
    targets, detections = [], []
    for i, (h, w) in enumerate(sizes):

        def norm(b, h=h, w=w):
            return [b[1] / h, b[0] / w, (b[1] + b[3]) / h, (b[0] + b[2]) / w]

        mine = [g for g in gts if g[0] == i]
        targets.append(
            BoxTargets.of([norm(b) for _, _, b, _ in mine], [c for _, c, _, _ in mine],
                          [bool(crowd) for *_, crowd in mine])
        )  # fmt: skip
        found = [d for d in dets if d[0] == i]
        detections.append(
            {
                "boxes": np.array([norm(b) for _, _, b, _ in found]).reshape(-1, 4),
                "scores": np.array([s for *_, s in found]),
                "classes": np.array([c for _, c, _, _ in found], np.int64),
            }
        )
    return targets, detections


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_equals_pycocotools_run_directly(tmp_path, seed):
    sizes, gts, dets = _scene(np.random.default_rng(seed))
    ev = _direct(tmp_path, sizes, gts, dets)
    targets, detections = _stored(sizes, gts, dets)
    summary, per_class = coco_map.evaluate_detections(targets, detections, sizes, CLASSES)
    assert 0.1 < summary["map50"] < 1.0  # a non-trivial case, neither empty nor perfect
    # float32 storage moves boxes by < 1e-4 px; the IoUs and hence the APs are unchanged.
    np.testing.assert_allclose(
        [summary["map"], summary["map50"], summary["map75"]], ev.stats[:3], atol=1e-6
    )
    for k, name in enumerate(CLASSES):
        p = ev.eval["precision"][:, :, k, 0, -1]
        assert per_class[name]["ap"] == pytest.approx(p[p > -1].mean(), abs=1e-6)
        p50 = ev.eval["precision"][0, :, k, 0, -1]
        assert per_class[name]["ap50"] == pytest.approx(p50[p50 > -1].mean(), abs=1e-6)


def test_perfect_and_empty_detections():
    t = [BoxTargets.of([[0.1, 0.1, 0.5, 0.5]], [1]), BoxTargets.empty()]
    perfect = [
        {"boxes": t[0].boxes, "scores": np.array([0.9]), "classes": np.array([1])},
        {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, np.int64)},
    ]
    summary, per_class = coco_map.evaluate_detections(t, perfect, [(64, 64)] * 2, CLASSES)
    assert summary == pytest.approx({"map": 1.0, "map50": 1.0, "map75": 1.0})
    assert per_class["shoe"]["ap"] == pytest.approx(1.0) and np.isnan(per_class["shirt"]["ap"])
    none = [perfect[1], perfect[1]]
    summary, per_class = coco_map.evaluate_detections(t, none, [(64, 64)] * 2, CLASSES)
    assert summary == {"map": 0.0, "map50": 0.0, "map75": 0.0}
    assert per_class["shoe"]["ap"] == 0.0
