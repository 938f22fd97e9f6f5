"""Mask sources on tiny files the tests write: folder, Pascal VOC, TFDS; every rejection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from convflow.components.base import ComponentError
from convflow.components.ingest import masks, tfds_masks
from PIL import Image

NAMES = ["background", "circle", "square"]


def no_progress(iterable, total=None, desc=""):
    return iterable


def scene(h: int = 12, w: int = 16, seed: int = 0):
    """A gray image with a bright square (class 2) and a 255 border ring around it."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (h, w), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    image[3:8, 4:9] = 220
    mask[3:8, 4:9] = 2
    mask[2, 4:9] = 255
    return image, mask


def save_palette(path: Path, mask: np.ndarray) -> None:
    im = Image.fromarray(mask, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def save_gray(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_reads_palette_and_gray_masks_and_rejects_every_bad_pair(tmp_path):
    root = tmp_path / "data"
    (root).mkdir()
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    image, mask = scene()
    save_gray(root / "images" / "a.png", image)
    save_palette(root / "masks" / "a.png", mask)
    save_gray(root / "images" / "b.jpg", image)
    save_gray(root / "masks" / "b.png", mask)  # 8-bit gray index PNG
    save_gray(root / "images" / "no_mask.png", image)
    save_gray(root / "masks" / "no_image.png", mask)
    save_gray(root / "images" / "small.png", image)
    save_gray(root / "masks" / "small.png", mask[:10])
    bad_values = mask.copy()
    bad_values[0, 0] = 3
    save_gray(root / "images" / "value.png", image)
    save_gray(root / "masks" / "value.png", bad_values)
    save_gray(root / "images" / "rgbmask.png", image)
    save_gray(root / "masks" / "rgbmask.png", np.stack([mask] * 3, -1))
    (root / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    save_gray(root / "masks" / "broken.png", mask)

    names, splits, rejected = masks.read_folder(root, None, no_progress)
    assert names == NAMES
    assert list(splits) == ["all"]
    got = {Path(r.source).name: r for r in splits["all"]}
    assert sorted(got) == ["a.png", "b.jpg"]
    np.testing.assert_array_equal(got["a.png"].mask, mask)  # palette index, not colour
    np.testing.assert_array_equal(got["b.jpg"].mask, mask)
    assert got["a.png"].image.shape == (12, 16, 1)
    reasons = {Path(r["source"]).stem: r["reason"] for r in rejected}
    assert sorted(reasons) == ["broken", "no_image", "no_mask", "rgbmask", "small", "value"]
    assert "image without a mask" in reasons["no_mask"]
    assert "mask without an image" in reasons["no_image"]
    assert reasons["small"] == "mask is 16×10 but its image is 16×12 (W×H)"
    assert reasons["value"].startswith("mask values [3] not in [0, 3)")
    assert "mode RGB" in reasons["rgbmask"]
    assert "undecodable image" in reasons["broken"]


def test_folder_split_levels_and_class_names_from_config(tmp_path):
    root = tmp_path / "data"
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            image, mask = scene(seed=i)
            save_gray(root / split / "images" / f"{i}.png", image)
            save_palette(root / split / "masks" / f"{i}.png", mask)
    names, splits, rejected = masks.read_folder(root, ["bg", "x", "y"], no_progress)
    assert names == ["bg", "x", "y"] and not rejected
    assert {s: len(r) for s, r in splits.items()} == {"train": 3, "validation": 2}


def test_folder_errors_are_one_line_and_name_the_fix(tmp_path):
    with pytest.raises(ComponentError, match="mask folder not found"):
        masks.read_folder(tmp_path / "nope", NAMES, no_progress)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ComponentError, match=r"classes\.txt .* or set ingest\.class_names"):
        masks.read_folder(tmp_path / "empty", None, no_progress)
    with pytest.raises(ComponentError, match="has no images/ and masks/ folders"):
        masks.read_folder(tmp_path / "empty", NAMES, no_progress)
    (tmp_path / "empty" / "classes.txt").write_text("a\n\nb\n")
    with pytest.raises(ComponentError, match="line 2 is empty"):
        masks.read_folder(tmp_path / "empty", None, no_progress)


def write_voc(root: Path) -> np.ndarray:
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    image, mask = scene()
    rgb = np.stack([image] * 3, -1)
    for i in ("2007_000001", "2007_000002", "2007_000003"):
        save_gray(root / "JPEGImages" / f"{i}.jpg", rgb)
        save_palette(root / "SegmentationClass" / f"{i}.png", mask)
    save_gray(root / "JPEGImages" / "2007_000010.jpg", rgb)  # listed, no mask
    save_palette(root / "SegmentationClass" / "2007_000011.png", mask)  # listed, no image
    save_gray(root / "JPEGImages" / "2007_000012.jpg", rgb[:5])  # size mismatch
    save_palette(root / "SegmentationClass" / "2007_000012.png", mask)
    big = mask.copy()
    big[0, 0] = 21
    save_gray(root / "JPEGImages" / "2007_000013.jpg", rgb)
    save_palette(root / "SegmentationClass" / "2007_000013.png", big)
    save_gray(root / "JPEGImages" / "not_listed.jpg", rgb)  # no mask, not in any list: skipped
    (lists / "train.txt").write_text("2007_000001\n2007_000002\n2007_000010\n2007_000012\n")
    (lists / "val.txt").write_text("2007_000003\n2007_000011\n2007_000013\n")
    return mask


def test_voc_layout_reads_split_lists_and_rejects_every_bad_pair(tmp_path):
    mask = write_voc(tmp_path / "VOC2012")
    names, splits, rejected = masks.read_voc(tmp_path / "VOC2012", None, no_progress)
    assert names == masks.VOC_CLASSES and len(names) == 21
    assert {s: len(r) for s, r in splits.items()} == {"train": 2, "validation": 1}
    np.testing.assert_array_equal(splits["validation"][0].mask, mask)
    assert splits["train"][0].image.shape == (12, 16, 3)
    reasons = {Path(r["source"]).stem: r["reason"] for r in rejected}
    assert "image without a mask" in reasons["2007_000010"]
    assert "mask without an image" in reasons["2007_000011"]
    assert "but its image is 16×5" in reasons["2007_000012"]
    assert reasons["2007_000013"].startswith("mask values [21] not in [0, 21)")
    assert len(rejected) == 4


def test_voc_without_split_lists_is_a_clear_error(tmp_path):
    with pytest.raises(ComponentError, match=r"no split lists in .*ImageSets/Segmentation"):
        masks.read_voc(tmp_path, None, no_progress)


def test_check_pair_allows_ignore_index_only():
    image = np.zeros((2, 2, 1), np.uint8)
    assert masks.check_pair(image, np.array([[0, 255], [2, 1]], np.uint8), 3) is None
    assert "[254]" in masks.check_pair(image, np.array([[0, 254], [2, 1]], np.uint8), 3)


@pytest.mark.slow
def test_tfds_prepared_data_dir(tmp_path):
    import tensorflow_datasets as tfds

    class ConvflowTinyMasks(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(None, None, 1)),
                        "segmentation_mask": tfds.features.Image(shape=(None, None, 1)),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(6), "test": self._generate_examples(3)}

        def _generate_examples(self, n):
            for i in range(n):
                image, mask = scene(seed=i)
                if i == 1:
                    mask = mask[:6]  # size mismatch
                if i == 2:
                    mask = np.where(mask == 2, 7, mask).astype(np.uint8)  # value too large
                yield i, {"image": image[..., None], "segmentation_mask": mask[..., None]}

    data_dir = tmp_path / "tfds"
    ConvflowTinyMasks(data_dir=str(data_dir)).download_and_prepare()
    names, splits, rejected = tfds_masks.read(
        "convflow_tiny_masks", str(data_dir), False, NAMES, no_progress
    )
    assert names == NAMES
    assert {s: len(r) for s, r in splits.items()} == {"train": 4, "test": 1}
    assert splits["train"][0].mask.shape == (12, 16) and splits["train"][0].image.shape[-1] == 1
    reasons = [r["reason"] for r in rejected]
    assert len(reasons) == 4  # samples 1 and 2 of both splits
    assert sum(r == "mask is 16×6 but its image is 16×12 (W×H)" for r in reasons) == 2
    assert sum(r.startswith("mask values [7] not in [0, 3)") for r in reasons) == 2
    assert rejected[0]["source"].startswith("tfds:convflow_tiny_masks/")
    with pytest.raises(ComponentError, match=r"set ingest\.class_names"):
        tfds_masks.read("convflow_tiny_masks", str(data_dir), False, None, no_progress)
    with pytest.raises(ComponentError, match="has no feature 'seg'"):
        tfds_masks.read(
            "convflow_tiny_masks", str(data_dir), False, NAMES, no_progress, mask_key="seg"
        )
