"""The ingest component on each source kind, and on bad input."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fashion_mnist_slice, write_idx
from convflow.components import examples
from convflow.components.base import EXAMPLES, Artifact, ComponentError, Context, OutputArtifact
from convflow.components.ingest import REJECTED_FILE, Params, ingest
from convflow.components.ingest.spec import IdxFiles
from PIL import Image


def run_ingest(tmp_path, **params) -> Artifact:
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        params=Params(**params),
        inputs={},
        outputs={"examples": OutputArtifact(str(out), EXAMPLES)},
        work_dir=work,
        show_progress=False,
    )
    ingest(ctx)
    return Artifact(str(out), EXAMPLES, "test", "test", ctx.outputs["examples"].properties)


def idx_params(files: dict, names=None) -> IdxFiles:
    names = names or [str(i) for i in range(10)]
    return IdxFiles(**files, class_names=names)


def test_idx_source_round_trips_real_images(tmp_path, small_idx):
    art = run_ingest(tmp_path, idx=idx_params(small_idx), validation_fraction=0.25)
    p = art.properties
    counts = {s: e["count"] for s, e in p["splits"].items()}
    assert counts["train"] + counts["validation"] == 600 and counts["test"] == 200
    assert abs(counts["validation"] - 150) <= 5  # 25% of each class, rounded per class
    assert p["image_shape"] == [28, 28, 1] and p["dtype"] == "uint8" and p["num_classes"] == 10
    test_images, test_labels = examples.read_split(art, "test")
    want_images, want_labels = fashion_mnist_slice("test", 200)
    np.testing.assert_array_equal(test_images[..., 0], want_images)
    np.testing.assert_array_equal(test_labels, want_labels)
    assert sum(p["label_histogram"]["validation"]) == counts["validation"]
    assert (art.path / REJECTED_FILE).read_text() == ""


def test_validation_split_is_stratified_and_seeded(tmp_path, small_idx):
    a = run_ingest(tmp_path / "a", idx=idx_params(small_idx), validation_fraction=0.2, seed=1)
    b = run_ingest(tmp_path / "b", idx=idx_params(small_idx), validation_fraction=0.2, seed=1)
    c = run_ingest(tmp_path / "c", idx=idx_params(small_idx), validation_fraction=0.2, seed=2)
    train_hist = np.array(a.properties["label_histogram"]["train"])
    val_hist = np.array(a.properties["label_histogram"]["validation"])
    np.testing.assert_allclose(val_hist / (train_hist + val_hist), 0.2, atol=0.05)
    va, vb, vc = (examples.read_split(x, "validation")[0] for x in (a, b, c))
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va, vc)


def test_plain_idx_and_max_examples(tmp_path):
    images, labels = fashion_mnist_slice("train", 300)
    files = {
        "train_images": str(write_idx(tmp_path / "ti", images, compress=False)),
        "train_labels": str(write_idx(tmp_path / "tl", labels, compress=False)),
        "test_images": str(write_idx(tmp_path / "vi", images[:50], compress=False)),
        "test_labels": str(write_idx(tmp_path / "vl", labels[:50], compress=False)),
    }
    art = run_ingest(tmp_path, idx=idx_params(files), max_examples=40)
    assert all(e["count"] <= 40 for e in art.properties["splits"].values())
    assert art.properties["splits"]["test"]["count"] == 40


def test_truncated_gzip_keeps_complete_records_and_rejects_the_rest(tmp_path, small_idx):
    raw = gzip.decompress(Path(small_idx["train_images"]).read_bytes())
    cut = 16 + 28 * 28 * 597 + 100  # 597 whole images, then part of one
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw[:cut])[:-8])  # and a broken gzip trailer
    files = {**small_idx, "train_images": str(tmp_path / "cut.gz")}
    art = run_ingest(tmp_path, idx=idx_params(files))
    total = sum(e["count"] for e in art.properties["splits"].values())
    assert total == 597 + 200
    rejected = [json.loads(line) for line in (art.path / REJECTED_FILE).read_text().splitlines()]
    assert [r["index"] for r in rejected] == [597, 598, 599]
    assert rejected[0]["reason"] == "image missing (file truncated)"


def test_bad_labels_are_rejected_with_reason(tmp_path, small_idx):
    labels = fashion_mnist_slice("train", 600)[1]
    labels[[3, 10]] = 42
    files = {**small_idx, "train_labels": str(write_idx(tmp_path / "bad.gz", labels))}
    art = run_ingest(tmp_path, idx=idx_params(files))
    rejected = [json.loads(line) for line in (art.path / REJECTED_FILE).read_text().splitlines()]
    assert [(r["index"], r["reason"]) for r in rejected] == [
        (3, "label 42 not in [0, 10)"),
        (10, "label 42 not in [0, 10)"),
    ]
    assert art.properties["rejected"] == 2


def test_too_many_rejections_fail_with_a_clear_message(tmp_path, small_idx):
    labels = fashion_mnist_slice("train", 600)[1]
    labels[:60] = 99  # 60 of 800 = 7.5%
    files = {**small_idx, "train_labels": str(write_idx(tmp_path / "bad.gz", labels))}
    with pytest.raises(
        ComponentError,
        match=r"60 of 800 records rejected \(7.5%\), above ingest.max_rejected_fraction=0.01",
    ):
        run_ingest(tmp_path, idx=idx_params(files))
    assert (
        len((tmp_path / "work" / REJECTED_FILE).read_text().splitlines()) == 60
    )  # kept for the user
    run_ingest(
        tmp_path / "ok", idx=idx_params(files), max_rejected_fraction=0.1
    )  # raised limit passes


def test_not_an_idx_file(tmp_path, small_idx):
    (tmp_path / "junk").write_bytes(b"hello world, not idx")
    files = {**small_idx, "test_images": str(tmp_path / "junk")}
    with pytest.raises(ComponentError, match="not an IDX file"):
        run_ingest(tmp_path, idx=idx_params(files))


def _png(array: np.ndarray, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def make_folder(root, n_per_class=12, bad=True):
    rng = np.random.default_rng(0)
    for c, cls in enumerate(["cat", "dog", "eel"]):
        d = root / cls
        d.mkdir(parents=True)
        for i in range(n_per_class):
            h, w = 20 + i, 30 + c  # any size
            if i % 3 == 0:
                arr, fmt, ext = rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "JPEG", "jpg"
            elif i % 3 == 1:
                arr, fmt, ext = rng.integers(0, 255, (h, w), dtype=np.uint8), "PNG", "png"
            else:
                arr, fmt, ext = rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "BMP", "bmp"
            (d / f"{i}.{ext}").write_bytes(_png(arr, fmt))
    if bad:
        (root / "cat" / "empty.png").write_bytes(b"")
        (root / "dog" / "garbage.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
        good = _png(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        (root / "eel" / "truncated.png").write_bytes(good[: len(good) // 2])
        (root / "eel" / "notes.txt").write_text("hello")


def test_folder_source_mixed_sizes_and_channels(tmp_path):
    make_folder(tmp_path / "imgs", bad=False)
    art = run_ingest(tmp_path, source="folder", folder=str(tmp_path / "imgs"), test_fraction=0.25)
    p = art.properties
    assert p["class_names"] == ["cat", "dog", "eel"]
    assert p["image_shape"] is None  # sizes differ
    assert p["channels"] == 3  # auto: some images have colour
    assert sum(e["count"] for e in p["splits"].values()) == 36
    assert p["splits"]["test"]["count"] == 9
    images, _ = examples.read_shard(art.path / p["splits"]["train"]["files"][0], "uint8")
    assert all(im.shape[-1] == 3 and im.dtype == np.uint8 for im in images)
    assert len({im.shape for im in images}) > 1


def test_folder_bad_files_are_rejected_not_fatal_under_the_limit(tmp_path):
    make_folder(tmp_path / "imgs", bad=True)
    art = run_ingest(
        tmp_path,
        source="folder",
        folder=str(tmp_path / "imgs"),
        channels="grayscale",
        max_rejected_fraction=0.2,
    )
    rejected = {
        json.loads(line)["source"].split("/")[-1]: json.loads(line)["reason"]
        for line in (art.path / REJECTED_FILE).read_text().splitlines()
    }
    assert set(rejected) == {"empty.png", "garbage.jpg", "truncated.png", "notes.txt"}
    assert rejected["empty.png"] == "empty file"
    assert rejected["notes.txt"] == "not an image file (extension .txt)"
    assert rejected["garbage.jpg"].startswith("undecodable image")
    assert rejected["truncated.png"].startswith("undecodable image")
    assert art.properties["channels"] == 1


def test_folder_with_train_and_test_levels(tmp_path):
    make_folder(tmp_path / "imgs" / "train", bad=False)
    make_folder(tmp_path / "imgs" / "test", n_per_class=2, bad=False)
    art = run_ingest(tmp_path, source="folder", folder=str(tmp_path / "imgs"))
    assert art.properties["splits"]["test"]["count"] == 6


def test_folder_with_nothing_usable(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "x.png").write_bytes(b"")
    with pytest.raises(ComponentError, match=r"no usable images \(1 rejected"):
        run_ingest(tmp_path, source="folder", folder=str(tmp_path / "imgs"))


def test_tfds_source_reads_a_prepared_data_dir(tmp_path):
    import tensorflow_datasets as tfds

    class ConvflowTinyShapes(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(names=["dark", "light"]),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(40), "test": self._generate_examples(10)}

        def _generate_examples(self, n):
            for i in range(n):
                label = i % 2
                yield i, {"image": np.full((8, 8, 1), 200 * label, np.uint8), "label": label}

    data_dir = tmp_path / "tfds"
    ConvflowTinyShapes(data_dir=str(data_dir)).download_and_prepare()
    art = run_ingest(
        tmp_path, source="tfds", tfds_name="convflow_tiny_shapes", tfds_data_dir=str(data_dir)
    )
    p = art.properties
    assert p["class_names"] == ["dark", "light"]
    assert {s: e["count"] for s, e in p["splits"].items()} == {
        "train": 36,
        "validation": 4,
        "test": 10,
    }
    images, labels = examples.read_split(art, "test")
    np.testing.assert_array_equal(images.reshape(10, -1).max(axis=1), 200 * labels)


def test_tfds_not_prepared_offline_is_a_clear_error(tmp_path):
    with pytest.raises(ComponentError, match="is not prepared in data_dir"):
        run_ingest(
            tmp_path, source="tfds", tfds_name="mnist", tfds_data_dir=str(tmp_path / "empty")
        )


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Params().seed = 3  # type: ignore[misc]


def _idx_header_lie(path: Path, declared: int, real: int, compress: bool) -> Path:
    """An image IDX file whose header declares ``declared`` 28×28 records but holds ``real``."""
    images, _ = fashion_mnist_slice("train", real)
    raw = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (declared, 28, 28))
    data = raw + images.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


IDX_LIE_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))  # 2 GiB of address space
from convflow.components.ingest import idx
t0 = time.perf_counter()
images, labels, rejected = idx.read_pair(sys.argv[1], sys.argv[2], 10)
print(len(images), len(rejected), sum(int(r.get("count", 1)) for r in rejected),
      round(time.perf_counter() - t0, 2))
"""


@pytest.mark.parametrize("compress", [True, False])
def test_idx_header_lie_is_checked_in_constant_memory(tmp_path, compress):
    import os
    import subprocess
    import sys

    declared = 2**31 - 1  # 1.6 TB of 28×28 images claimed by a 4-byte count
    images = _idx_header_lie(tmp_path / "lie.idx", declared, 50, compress)
    labels = write_idx(tmp_path / "labels.gz", fashion_mnist_slice("train", 50)[1])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", IDX_LIE_CHILD, str(images), str(labels)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    kept, listed, count, seconds = proc.stdout.split()
    assert int(kept) == 50 and int(count) == declared - 50
    assert int(listed) == 1000 + 1  # 1000 listed, the rest one aggregated rejection
    assert float(seconds) < 5


def test_idx_header_lie_fails_the_step_with_one_line(tmp_path, small_idx):
    lie = _idx_header_lie(tmp_path / "lie.gz", 10**9, 600, True)
    files = {**small_idx, "train_images": str(lie)}
    with pytest.raises(ComponentError, match=r"^999,999,400 of 1,000,000,200 records rejected"):
        run_ingest(tmp_path, idx=idx_params(files))


def test_idx_dimensions_that_do_not_match_the_data(tmp_path, small_idx):
    images, _ = fashion_mnist_slice("train", 600)
    wrong = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (600, 20, 20))
    (tmp_path / "dims.gz").write_bytes(gzip.compress(wrong + images.tobytes()))
    files = {**small_idx, "train_images": str(tmp_path / "dims.gz")}
    with pytest.raises(ComponentError, match="its header declares 600 records of shape"):
        run_ingest(tmp_path, idx=idx_params(files))


def test_label_file_with_more_than_one_dimension_is_one_line(tmp_path, small_idx):
    labels = fashion_mnist_slice("train", 600)[1].reshape(600, 1)
    files = {**small_idx, "train_labels": str(write_idx(tmp_path / "l2.gz", labels))}
    with pytest.raises(
        ComponentError, match=r"expected a 1-D label file \(N\), got shape \[600, 1\]"
    ):
        run_ingest(tmp_path, idx=idx_params(files))
