"""Segmentation through the real steps: ingest (scenes and a mask folder within the rejected
share), Beam preprocessing moving masks by nearest neighbour, the task's targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from convflow.components import masks as mask_ops
from convflow.components.base import ComponentError, run_by_hand
from convflow.components.examples import read_split
from convflow.components.ingest import ingest
from convflow.components.ingest.scenes import SceneParams
from convflow.components.ingest.spec import Params as IngestParams
from convflow.components.preprocess import preprocess
from convflow.components.preprocess.spec import Params as PreParams
from convflow.components.targets import Window
from convflow.components.tasks import get
from PIL import Image

SEG = {"task": "segmentation"}
TINY = SceneParams(train_scenes=12, validation_scenes=4, test_scenes=6)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_ingest")
    params = IngestParams(source="scenes", scenes=TINY)
    return run_by_hand(ingest, root, {}, params, SEG)["examples"]


def test_scene_ingest_writes_masks_with_background_first(raw):
    info = raw.properties
    assert info["class_names"][0] == "background" and len(info["class_names"]) == 11
    assert {s: e["count"] for s, e in info["splits"].items()} == {
        "train": 12,
        "validation": 4,
        "test": 6,
    }
    images, masks = read_split(raw, "test", get("segmentation"))
    assert images.shape == (6, 64, 64, 1) and masks.shape == (6, 64, 64)
    assert masks.dtype == np.uint8 and masks.max() <= 10
    # The pixel histogram is of masks (ignore left out), not of labels.
    assert sum(info["label_histogram"]["test"]) == 6 * 64 * 64


@pytest.mark.slow
def test_beam_moves_masks_by_nearest_neighbour_and_gcn_leaves_them(raw, tmp_path):
    params = PreParams(steps=["crop", "resize", "gcn"], size=24)
    out = run_by_hand(preprocess, tmp_path, {"examples": raw}, params, SEG)["examples"]
    task = get("segmentation")
    _, raw_masks = read_split(raw, "train", task)
    images, masks = read_split(out, "train", task)
    assert images.shape == (12, 24, 24, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(masks, mask_ops.resize_nearest(raw_masks, 24))
    assert set(np.unique(masks)) <= set(np.unique(raw_masks))  # no class value invented
    # GCN changed the image only: the moved mask is the same with or without it.
    plain = run_by_hand(
        preprocess,
        tmp_path / "no_gcn",
        {"examples": raw},
        PreParams(steps=["resize"], size=24),
        SEG,
    )["examples"]
    np.testing.assert_array_equal(read_split(plain, "train", task)[1], masks)


def test_move_targets_crops_then_resizes_lists_and_stacks():
    task = get("segmentation")
    mask = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10) % 7
    window = Window(6, 10, 0, 2, 6, 6, 3, 3)  # centre 6×6 crop, then 3×3
    moved = task.move_targets({"mask": mask[None]}, window)["mask"]
    np.testing.assert_array_equal(moved[0], mask[:, 2:8][1::2, 1::2])
    ragged = np.empty(1, object)
    ragged[0] = mask
    np.testing.assert_array_equal(task.move_targets({"mask": ragged}, window)["mask"][0], moved[0])
    assert task.check_target({"mask": np.full((2, 2), 11, np.uint8)}, (2, 2, 1), 11)
    assert task.check_target({"mask": np.full((2, 2), 255, np.uint8)}, (2, 2, 1), 11) is None


def _mask_folder(root: Path, good: int, bad: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("bg\nthing\n")
    for i in range(good):
        Image.fromarray(np.full((8, 8), 10 * i, np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.eye(8, dtype=np.uint8)).save(root / "masks" / f"{i}.png")
    for i in range(bad):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / f"lonely{i}.png")


@pytest.mark.slow
def test_folder_ingest_accepts_rejections_within_the_limit_and_fails_above(tmp_path):
    _mask_folder(tmp_path / "ok", good=20, bad=1)
    params = IngestParams(
        source="mask_folder", folder=str(tmp_path / "ok"), max_rejected_fraction=0.1
    )
    art = run_by_hand(ingest, tmp_path / "run_ok", {}, params, SEG)["examples"]
    assert art.properties["rejected"] == 1 and art.properties["class_names"] == ["bg", "thing"]
    lines = (art.path / "rejected.jsonl").read_text()
    assert "image without a mask" in lines
    _mask_folder(tmp_path / "bad", good=5, bad=5)
    params = IngestParams(source="mask_folder", folder=str(tmp_path / "bad"))
    with pytest.raises(ComponentError, match=r"5 of 10 records rejected \(50\.0%\)"):
        run_by_hand(ingest, tmp_path / "run_bad", {}, params, SEG)
    with pytest.raises(ComponentError, match="has no masks; a segmentation pipeline reads one"):
        run_by_hand(ingest, tmp_path / "run_idx", {}, IngestParams(source="idx"), SEG)
