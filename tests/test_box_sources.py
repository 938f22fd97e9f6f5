"""COCO, Pascal VOC and YOLO txt ingest from tiny files written here, every rejection included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from convflow.components.base import ComponentError
from convflow.components.ingest import coco, voc, yolo_txt
from PIL import Image


def _png(path, height=100, width=200):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    return path


def _reasons(rejected):
    return sorted(r["reason"] for r in rejected)


def test_coco_boxes_crowd_negatives_and_every_rejection(tmp_path):
    images = tmp_path / "images"
    for name in ("a.png", "b.png", "neg.png", "bad_box.png", "bad_cls.png", "small.png"):
        _png(images / name)
    (images / "broken.png").write_bytes(b"not a png")
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 100, "width": 200},
            {"id": 2, "file_name": "b.png", "height": 100, "width": 200},
            {"id": 3, "file_name": "neg.png", "height": 100, "width": 200},
            {"id": 4, "file_name": "missing.png", "height": 100, "width": 200},
            {"id": 5, "file_name": "bad_box.png", "height": 100, "width": 200},
            {"id": 6, "file_name": "bad_cls.png", "height": 100, "width": 200},
            {"id": 7, "file_name": "broken.png", "height": 100, "width": 200},
            {"id": 8, "file_name": "small.png", "height": 100, "width": 200},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 200, 100], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [100, 50, 50, 25]},
            {"id": 4, "image_id": 4, "category_id": 3, "bbox": [1, 1, 5, 5]},
            {"id": 5, "image_id": 5, "category_id": 3, "bbox": [190, 20, 30, 40]},
            {"id": 6, "image_id": 6, "category_id": 99, "bbox": [1, 1, 5, 5]},
            {"id": 7, "image_id": 99, "category_id": 3, "bbox": [1, 1, 5, 5]},
            {"id": 8, "image_id": 8, "category_id": 3, "bbox": [1, 1, 0, 5]},
        ],
    }
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    names, records, rejected = coco.read(ann, images)
    assert names == ["cat", "dog"]  # category id order: 3, 7
    by_file = {r.source.rsplit("/", 1)[1]: r for r in records}
    assert sorted(by_file) == ["a.png", "b.png", "neg.png"]
    a = by_file["a.png"].targets
    np.testing.assert_allclose(a.boxes, [[0.2, 0.05, 0.6, 0.2], [0, 0, 1, 1]], atol=1e-6)
    assert a.classes.tolist() == [1, 0] and a.ignore.tolist() == [False, True]
    assert len(by_file["neg.png"].targets) == 0  # a valid negative
    assert by_file["a.png"].image.shape == (100, 200, 3)
    reasons = _reasons(rejected)
    assert len(reasons) == 6
    assert any("image file missing" in r and "missing.png" in r for r in reasons)
    assert any("outside the 200x100 image" in r for r in reasons)
    assert any("unknown class: category_id 99" in r for r in reasons)
    assert any("undecodable image" in r for r in reasons)
    assert any("unreadable annotation: image_id 99" in r for r in reasons)
    # a bad box rejects its whole image: training on the rest would teach a false negative
    assert any(
        r["source"].endswith("small.png") and "non-positive" in r["reason"] for r in rejected
    )


def test_coco_unreadable_json_is_one_line_error(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ComponentError, match="not a readable COCO JSON"):
        coco.read(tmp_path / "a.json", tmp_path)


VOC_XML = """<annotation><filename>{file}</filename><size><width>200</width><height>100</height>
<depth>3</depth></size>{objects}</annotation>"""
VOC_OBJ = """<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>
<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"""


def _voc(root, stem, objects, image=True):
    if image:
        _png(root / "JPEGImages" / f"{stem}.png")
    objs = "".join(VOC_OBJ.format(name=n, difficult=d, b=b) for n, b, d in objects)
    path = root / "Annotations" / f"{stem}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VOC_XML.format(file=f"{stem}.png", objects=objs))


def test_voc_boxes_difficult_negatives_and_every_rejection(tmp_path):
    _voc(tmp_path, "ok", [("dog", (11, 21, 40, 60), 0), ("cat", (1, 1, 200, 100), 1)])
    _voc(tmp_path, "neg", [])
    _voc(tmp_path, "noimg", [("dog", (1, 1, 5, 5), 0)], image=False)
    _voc(tmp_path, "outside", [("dog", (150, 1, 260, 5), 0)])
    _voc(tmp_path, "flat", [("dog", (10, 10, 8, 20), 0)])
    _voc(tmp_path, "unknown", [("unicorn", (1, 1, 5, 5), 0)])
    _voc(tmp_path, "nobox", [("dog", ("a", 1, 5, 5), 0)])
    _png(tmp_path / "JPEGImages" / "garbled.png")
    (tmp_path / "Annotations" / "garbled.xml").write_text("<annotation><object>")
    names, splits, rejected = voc.read(tmp_path, ["cat", "dog"])
    assert names == ["cat", "dog"] and list(splits) == ["all"]
    records = {r.source.rsplit("/", 1)[1]: r for r in splits["all"]}
    assert sorted(records) == ["neg.png", "ok.png"]
    ok = records["ok.png"].targets
    np.testing.assert_allclose(ok.boxes, [[0.2, 0.05, 0.6, 0.2], [0, 0, 1, 1]], atol=1e-6)
    assert ok.classes.tolist() == [1, 0] and ok.ignore.tolist() == [False, True]
    assert len(records["neg.png"].targets) == 0
    by_stem = {r["source"].rsplit("/", 1)[1]: r["reason"] for r in rejected}
    assert "image file missing" in by_stem["noimg.xml"]
    assert "outside the 200x100 image" in by_stem["outside.xml"]
    assert "non-positive size" in by_stem["flat.xml"]
    assert "unknown class 'unicorn'" in by_stem["unknown.xml"]
    assert "unreadable annotation" in by_stem["nobox.xml"]
    assert "unreadable annotation" in by_stem["garbled.xml"]
    assert len(rejected) == 6


def test_voc_split_lists(tmp_path):
    _voc(tmp_path, "a", [("dog", (1, 1, 5, 5), 0)])
    _voc(tmp_path, "b", [])
    sets = tmp_path / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("a\n")
    (sets / "val.txt").write_text("b\nzzz\n")
    _, splits, rejected = voc.read(tmp_path, ["dog"])
    assert {s: len(r) for s, r in splits.items()} == {"train": 1, "validation": 1}
    assert rejected[0]["source"].endswith("zzz.xml") and "missing" in rejected[0]["reason"]


def test_yolo_txt_boxes_negatives_and_every_rejection(tmp_path):
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    img, lab = tmp_path / "images" / "train", tmp_path / "labels" / "train"
    for stem in ("ok", "neg", "outside", "flat", "unknown", "garbled"):
        _png(img / f"{stem}.png")
    lab.mkdir(parents=True)
    (lab / "ok.txt").write_text("1 0.125 0.4 0.15 0.4\n0 0.5 0.5 1.0 1.0\n")
    (lab / "outside.txt").write_text("0 0.95 0.5 0.3 0.2\n")
    (lab / "flat.txt").write_text("0 0.5 0.5 0.0 0.2\n")
    (lab / "unknown.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    (lab / "garbled.txt").write_text("0 0.5 half 0.1 0.1\n")
    (lab / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    names, splits, rejected = yolo_txt.read(tmp_path)
    assert names == ["cat", "dog"] and list(splits) == ["train"]
    records = {r.source.rsplit("/", 1)[1]: r for r in splits["train"]}
    assert sorted(records) == ["neg.png", "ok.png"]
    np.testing.assert_allclose(
        records["ok.png"].targets.boxes, [[0.2, 0.05, 0.6, 0.2], [0, 0, 1, 1]], atol=1e-6
    )
    assert records["ok.png"].targets.classes.tolist() == [1, 0]
    assert len(records["neg.png"].targets) == 0
    by_stem = {r["source"].rsplit("/", 1)[1]: r["reason"] for r in rejected}
    assert "outside the 200x100 image" in by_stem["outside.txt"]
    assert "non-positive size" in by_stem["flat.txt"]
    assert "unknown class 7" in by_stem["unknown.txt"]
    assert "unreadable annotation line 1" in by_stem["garbled.txt"]
    assert "image missing" in by_stem["orphan.txt"]
    assert len(rejected) == 5


def test_yolo_txt_without_class_names_says_what_to_do(tmp_path):
    _png(tmp_path / "images" / "a.png")
    with pytest.raises(ComponentError, match=r"classes\.txt"):
        yolo_txt.read(tmp_path)
