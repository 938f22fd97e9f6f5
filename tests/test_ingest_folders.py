"""Image folders read the way people lay them out (components/ingest/folder.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from convflow.components import examples
from convflow.components.base import ComponentError
from convflow.components.ingest import REJECTED_FILE
from PIL import Image
from test_ingest import run_ingest

SAMPLES = Path("/work/shared/cases/images")


def put(path: Path, seed: int, mode: str = "L", size=(12, 10)) -> Path:
    """A small distinct image (content differs by seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


def classes(root: Path, names=("cat", "dog"), n=4, seed=0) -> None:
    for c, name in enumerate(names):
        for i in range(n):
            put(root / name / f"{i}.png", seed * 1000 + c * 100 + i)


def ingest_folder(tmp_path, root, **kw):
    return run_ingest(tmp_path / "run", source="folder", folder=str(root), **kw)


def test_hidden_things_are_skipped_at_every_depth_and_counted(tmp_path):
    root = tmp_path / "imgs"
    classes(root)
    put(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png", 99)
    put(root / ".git" / "objects" / "x.png", 98)
    put(root / "__MACOSX" / "cat" / "0.png", 97)
    (root / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (root / "dog" / "deep" / "deeper").mkdir(parents=True)
    (root / "dog" / "deep" / "deeper" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (root / "dog" / "desktop.ini").write_text("[.ShellClassInfo]")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    put(root / "dog" / "deep" / "deeper" / "9.png", 55)  # a visible file deep down counts
    art = ingest_folder(tmp_path, root, validation_fraction=0.0, test_fraction=0.0)
    p = art.properties
    assert p["class_names"] == ["cat", "dog"]
    assert p["skipped"] == {
        "appledouble": 1,
        "desktop_ini": 1,
        "hidden": 3,
        "macosx": 1,
        "thumbs_db": 1,
    }
    assert p["rejected"] == 0 and (art.path / REJECTED_FILE).read_text() == ""
    assert p["splits"]["train"]["count"] == 9


def test_empty_class_folder_is_not_a_class(tmp_path, capsys):
    root = tmp_path / "imgs"
    classes(root, names=("cat", "dog"))
    (root / "empty").mkdir()
    (root / "only_hidden").mkdir()
    (root / "only_hidden" / ".DS_Store").write_bytes(b"x")
    art = ingest_folder(tmp_path, root, test_fraction=0.25)
    p = art.properties
    assert p["class_names"] == ["cat", "dog"] and p["num_classes"] == 2
    assert p["empty_classes"] == ["empty", "only_hidden"]
    assert "not classes: empty, only_hidden" in capsys.readouterr().err
    _, labels = examples.read_split(art, "train")
    assert set(labels.tolist()) == {0, 1}
    assert all(len(h) == 2 for h in p["label_histogram"].values())


def test_fewer_than_two_usable_classes_is_one_clear_error(tmp_path):
    root = tmp_path / "imgs"
    classes(root, names=("cat",))
    (root / "dog").mkdir()
    with pytest.raises(
        ComponentError, match=r"only 1 class folder\(s\) hold usable images \(cat\); empty: dog"
    ):
        ingest_folder(tmp_path, root)


@pytest.mark.parametrize(
    "names,expect",
    [
        (("Train", "VAL", "TEST"), {"validation": 2, "test": 3}),
        (("train", "valid"), {"validation": 2}),
        (("train", "Validation", "test"), {"validation": 2, "test": 3}),
        (("TRAIN", "dev"), {"validation": 2}),
    ],
)
def test_split_folders_are_splits_not_classes(tmp_path, names, expect):
    root = tmp_path / "imgs"
    sizes = {"train": 5}
    for i, name in enumerate(names):
        split = {"val": "validation", "valid": "validation", "dev": "validation"}.get(
            name.lower(), name.lower()
        )
        n = {"train": 5, "validation": 2, "test": 3}[split]
        sizes[split] = n
        classes(root / name, n=n, seed=i + 1)
    art = ingest_folder(tmp_path, root, test_fraction=0.5)
    p = art.properties
    assert p["class_names"] == ["cat", "dog"]
    counts = {s: e["count"] for s, e in p["splits"].items()}
    for split, n in expect.items():
        assert counts[split] == 2 * n, counts
    assert sum(counts.values()) == 2 * sum(sizes.values())  # a missing test split is carved


def test_split_names_are_a_param(tmp_path):
    root = tmp_path / "imgs"
    classes(root / "fit", n=4, seed=1)
    classes(root / "holdout", n=2, seed=2)
    art = ingest_folder(tmp_path, root, split_names={"fit": "train", "holdout": "test"})
    assert art.properties["splits"]["test"]["count"] == 4
    assert art.properties["class_names"] == ["cat", "dog"]


def test_unclassifiable_layouts_say_what_was_found_and_expected(tmp_path):
    flat = tmp_path / "flat"
    for i in range(3):
        put(flat / f"{i}.png", i)
    with pytest.raises(ComponentError) as e:
        ingest_folder(tmp_path, flat)
    assert str(e.value) == (
        f"{flat}: found 0 folders (none) and 3 files and no class folders; "
        "expected <root>/<class>/<image> or <root>/<split>/<class>/<image>"
    )
    mixed = tmp_path / "mixed"
    classes(mixed / "train")
    classes(mixed, names=("cat",))
    with pytest.raises(
        ComponentError, match=r"split folders \(train\) next to other folders \(cat\)"
    ):
        ingest_folder(tmp_path, mixed)
    no_train = tmp_path / "no_train"
    classes(no_train / "test")
    with pytest.raises(ComponentError, match="but no train split"):
        ingest_folder(tmp_path, no_train)
    flat_split = tmp_path / "flat_split"
    for s in ("train", "test"):
        put(flat_split / s / "0.png", 1)
    with pytest.raises(
        ComponentError, match=r"flat_split/train: found 0 folders .* no class folders"
    ):
        ingest_folder(tmp_path, flat_split)
    assert "\n" not in str(e.value)


def _leaky(root: Path) -> None:
    classes(root / "train", n=5, seed=1)
    classes(root / "test", n=3, seed=2)
    shutil.copy(root / "train" / "cat" / "0.png", root / "test" / "cat" / "copy.png")
    shutil.copy(root / "train" / "dog" / "1.png", root / "test" / "dog" / "copy.png")


def test_same_content_in_two_splits_is_leakage(tmp_path, capsys):
    _leaky(tmp_path / "imgs")
    art = ingest_folder(tmp_path, tmp_path / "imgs")
    assert art.properties["duplicates_across_splits"] == 2
    assert art.properties["splits"]["test"]["count"] == 8
    err = capsys.readouterr().err
    assert "warning: ingest: 2 images appear in more than one split" in err
    assert "copy.png = " in err


def test_on_duplicates_drop_and_fail(tmp_path):
    _leaky(tmp_path / "imgs")
    art = run_ingest(
        tmp_path / "a", source="folder", folder=str(tmp_path / "imgs"), on_duplicates="drop"
    )
    assert art.properties["splits"]["test"]["count"] == 6
    test_images, _ = examples.read_split(art, "test")
    train = np.asarray(Image.open(tmp_path / "imgs" / "train" / "cat" / "0.png"))
    assert not any(np.array_equal(im[..., 0], train) for im in test_images)
    with pytest.raises(
        ComponentError, match=r"2 images appear in more than one split.*on_duplicates"
    ):
        run_ingest(
            tmp_path / "b", source="folder", folder=str(tmp_path / "imgs"), on_duplicates="fail"
        )


def test_mixed_modes_take_the_majority_channel_count(tmp_path):
    root = tmp_path / "imgs"
    classes(root, n=4)
    put(root / "cat" / "odd.png", 7, mode="RGB")
    shutil.copy(SAMPLES / "trouser_alpha.png", root / "dog" / "alpha.png")
    shutil.copy(SAMPLES / "trouser16.png", root / "dog" / "deep16.png")
    art = ingest_folder(tmp_path, root, validation_fraction=0.0, test_fraction=0.0)
    assert art.properties["channels"] == 1
    images, _ = examples.read_shard(
        art.path / art.properties["splits"]["train"]["files"][0], "uint8"
    )
    assert {im.shape[-1] for im in images} == {1}
    alpha = next(im for im in images if im.shape[:2] == (28, 28) and im.mean() > 128)
    assert alpha[0, 0, 0] == 255  # composited on white, then gray
    rgb = ingest_folder(
        tmp_path / "rgb", root, channels="rgb", validation_fraction=0.0, test_fraction=0.0
    )
    assert rgb.properties["channels"] == 3


def test_oversized_image_is_a_rejected_record_and_the_rest_ingested(tmp_path):
    root = tmp_path / "imgs"
    classes(root, n=20)
    put(root / "dog" / "huge.png", 5, size=(300, 200))
    art = ingest_folder(tmp_path, root, max_image_pixels=10_000, max_rejected_fraction=0.1)
    lines = [json.loads(x) for x in (art.path / REJECTED_FILE).read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["source"].endswith("dog/huge.png")
    assert "300×200 = 60,000 pixels, above the limit of 10,000" in lines[0]["reason"]
    assert sum(e["count"] for e in art.properties["splits"].values()) == 40
