"""Fashion-MNIST scenes: deterministic, split-pure, masks and boxes that agree."""

from __future__ import annotations

import gzip
from dataclasses import replace

import numpy as np
import pytest
from convflow.components.base import ComponentError
from convflow.components.ingest.scenes import (
    SceneParams,
    box_iou,
    compose_scenes,
    fashion_scenes,
    source_garments,
)

SMALL = SceneParams(train_scenes=40, validation_scenes=10, test_scenes=20)


@pytest.fixture(scope="module")
def train_scenes():
    return fashion_scenes(SMALL, "train")


def test_shapes_and_values(train_scenes):
    s = train_scenes
    assert s.images.shape == (40, 64, 64, 1) and s.images.dtype == np.uint8
    assert s.masks.shape == (40, 64, 64) and s.masks.dtype == np.uint8
    assert set(np.unique(s.masks)) <= set(range(11))
    counts = [len(b) for b in s.boxes]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) > 1
    for boxes, classes in zip(s.boxes, s.box_classes, strict=True):
        assert boxes.shape == (len(classes), 4) and boxes.dtype == np.float32
        assert ((boxes >= 0) & (boxes <= 1)).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert ((classes >= 0) & (classes <= 9)).all()


def test_boxes_are_tight_around_their_mask_pixels(train_scenes):
    s = train_scenes
    for mask, boxes, classes in zip(s.masks, s.boxes, s.box_classes, strict=True):
        covered = np.zeros_like(mask, bool)
        for box, cls in zip(np.rint(boxes * 64).astype(int), classes, strict=True):
            y0, x0, y1, x1 = box
            inside = mask[y0:y1, x0:x1]
            assert set(np.unique(inside)) <= {0, cls + 1}
            # Tight: the garment touches all four edges of its box.
            fg = inside > 0
            assert fg[0].any() and fg[-1].any() and fg[:, 0].any() and fg[:, -1].any()
            covered[y0:y1, x0:x1] = True
        assert not (mask[~covered]).any(), "a garment pixel outside every box"
    # max_overlap=0: no two boxes of a scene overlap.
    for boxes in s.boxes:
        iou = box_iou(boxes, boxes)
        assert np.allclose(iou - np.diag(np.diag(iou)), 0)


def test_garment_pixels_are_the_claimed_source_image():
    pool, labels = source_garments(SMALL, "train")
    p = replace(SMALL, min_scale=1.0, max_scale=1.0)  # 28 px: resizing is the identity
    s = compose_scenes(pool, labels, 10, p, "train")
    for i in range(10):
        for box, cls, src in zip(s.boxes[i], s.box_classes[i], s.sources[i], strict=True):
            assert labels[src] == cls
            y0, x0, y1, x1 = np.rint(box * 64).astype(int)
            garment = pool[src]
            rows = np.flatnonzero((garment > p.threshold).any(1))
            cols = np.flatnonzero((garment > p.threshold).any(0))
            cut = garment[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            fg = cut > p.threshold
            assert np.array_equal(s.masks[i, y0:y1, x0:x1] == cls + 1, fg)
            assert np.array_equal(s.images[i, y0:y1, x0:x1, 0][fg], cut[fg])


def test_deterministic_and_independent_of_count(train_scenes):
    again = fashion_scenes(replace(SMALL, train_scenes=15), "train")
    assert np.array_equal(again.images, train_scenes.images[:15])
    assert np.array_equal(again.masks, train_scenes.masks[:15])
    other_seed = fashion_scenes(replace(SMALL, train_scenes=15, seed=1), "train")
    assert not np.array_equal(other_seed.masks, again.masks)


def test_splits_draw_from_disjoint_source_images():
    with gzip.open(f"{SMALL.idx_dir}/train-images-idx3-ubyte.gz") as f:
        train = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{SMALL.idx_dir}/t10k-images-idx3-ubyte.gz") as f:
        test = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    tr, va, te = (source_garments(SMALL, s)[0] for s in ("train", "validation", "test"))
    assert len(tr) == 54_000 and len(va) == 6_000 and len(te) == 10_000
    assert np.array_equal(np.concatenate([tr, va]), train)
    assert np.array_equal(te, test)
    # Different splits with the same index get different scenes (own seed stream).
    a = fashion_scenes(replace(SMALL, validation_scenes=3), "validation")
    b = fashion_scenes(replace(SMALL, test_scenes=3), "test")
    assert a.images.shape == b.images.shape == (3, 64, 64, 1)
    assert not np.array_equal(a.images, b.images)


def test_overlap_allowed_keeps_amodal_boxes():
    pool = np.full((3, 28, 28), 200, np.uint8)
    p = SceneParams(size=32, min_objects=4, max_objects=4, min_scale=1, max_scale=1, max_overlap=1)
    s = compose_scenes(pool, np.array([0, 1, 2]), 5, p, "train")
    assert all(len(b) == 4 for b in s.boxes)  # every garment placed, covering each other
    assert np.allclose(s.boxes[0][:, 2] - s.boxes[0][:, 0], 28 / 32)


def test_bad_settings_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"max_objects=1 < scenes\.min_objects=2"):
        SceneParams(min_objects=2, max_objects=1)
    with pytest.raises(ValueError, match=r"larger than scenes\.size=32"):
        SceneParams(size=32, max_scale=1.5)
    with pytest.raises(ComponentError, match=r"not found in ingest\.scenes\.idx_dir"):
        fashion_scenes(replace(SMALL, idx_dir=str(tmp_path)), "train")
    with pytest.raises(ValueError, match="unknown scene split 'val'"):
        fashion_scenes(SMALL, "val")
