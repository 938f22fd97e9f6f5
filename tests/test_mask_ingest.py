"""Mask ingest: reading each source kind into splits, carving test and validation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from convflow.components.ingest import mask_ingest
from convflow.components.ingest.scenes import SceneParams
from PIL import Image


def params(**kw):
    base = dict(
        source="mask_folder", folder=None, class_names=None, channels="majority",
        test_fraction=0.25, validation_fraction=0.25, seed=0, max_examples=None,
        scenes=SceneParams(train_scenes=6, validation_scenes=2, test_scenes=3),
        idx=SimpleNamespace(class_names=[f"g{i}" for i in range(10)]),
    )  # fmt: skip
    return SimpleNamespace(**{**base, **kw})


def no_progress(iterable, total=None, desc=""):
    return iterable


def test_scenes_give_three_splits_and_background_first():
    names, splits, rejected = mask_ingest.read(params(source="scenes"), no_progress)
    assert names[0] == "background" and names[1:] == [f"g{i}" for i in range(10)]
    assert {s: len(im) for s, (im, _) in splits.items()} == {
        "train": 6,
        "validation": 2,
        "test": 3,
    }
    assert not rejected
    carved = mask_ingest.carve(splits, params())
    images, masks = carved["train"]
    assert images.shape == (6, 64, 64, 1) and masks.shape == (6, 64, 64)


def test_unsplit_folder_is_carved_seeded_and_mixed_channels_agree(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("bg\nthing\n")
    for i in range(8):
        mask = np.zeros((6, 5 + i % 2), np.uint8)
        mask[i % 6] = 1
        pixels = np.full((*mask.shape, 3 if i < 5 else 1), 10 * i, np.uint8)
        Image.fromarray(pixels.squeeze(-1) if i >= 5 else pixels).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    p = params(folder=str(root))
    names, splits, rejected = mask_ingest.read(p, no_progress)
    assert names == ["bg", "thing"] and list(splits) == ["all"] and not rejected
    assert {im.shape[-1] for im in splits["all"][0]} == {3}  # majority colour
    carved = mask_ingest.carve(splits, p)
    sizes = {s: len(im) for s, (im, _) in carved.items()}
    assert sizes == {"train": 4, "validation": 2, "test": 2}
    again = mask_ingest.carve(mask_ingest.read(p, no_progress)[1], p)
    for s in carved:
        for a, b in zip(carved[s][1], again[s][1], strict=True):
            np.testing.assert_array_equal(a, b)
    # Mixed sizes stay lists; every mask still matches its image.
    for images, masks in carved.values():
        for image, mask in zip(images, masks, strict=True):
            assert image.shape[:2] == mask.shape
    capped = mask_ingest.carve(splits, params(folder=str(root), max_examples=1))
    assert {s: len(im) for s, (im, _) in capped.items()} == {"train": 1, "validation": 1, "test": 1}


def test_source_fingerprint_of_scenes_and_mask_folders(tmp_path):
    from convflow.components.ingest.sources import fingerprint
    from convflow.components.ingest.spec import Params

    scenes = fingerprint(Params(source="scenes"))
    assert any(p.endswith("train-images-idx3-ubyte.gz") for p in scenes["listing"])
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")
    folder = fingerprint(Params(source="mask_folder", folder=str(tmp_path)))
    assert list(folder["listing"]) == [str(tmp_path / "images" / "a.png")]
    (tmp_path / "images" / "a.png").write_bytes(b"xy")
    assert (
        fingerprint(Params(source="mask_folder", folder=str(tmp_path)))["digest"]
        != (folder["digest"])
    )
    boxes = fingerprint(Params(source="yolo_txt", folder=str(tmp_path)))  # class_names: a list
    assert boxes["files"] >= 1
