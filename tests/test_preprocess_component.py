"""The preprocess component end to end on small artifacts, and Beam/Keras agreement."""

import json
from pathlib import Path

import numpy as np
import pytest
from convflow.components.base import (
    ARTIFACT_FILE,
    Artifact,
    ComponentError,
    Context,
    NullTracker,
    OutputArtifact,
)
from convflow.components.examples import encode, read_split, shard_name, write_shard
from convflow.components.preprocess import Params, preprocess
from convflow.components.preprocess.executor import beam_options
from convflow.components.serving.model import build_preprocessor
from convflow.components.transforms import GcnParams, LcnParams
from PIL import Image


class RecordingTracker(NullTracker):
    def __init__(self):
        self.artifacts = []

    def log_artifact(self, path, artifact_path=None):
        assert Path(path).exists(), path
        self.artifacts.append(Path(path).name)


def write_ingest(root: Path, splits: dict, image_shape, num_classes=10, bad=()) -> Artifact:
    """A uint8 Examples artifact; ``bad`` records are appended to the train shard."""
    src = root / "ingest"
    src.mkdir()
    props = {}
    for split, (images, labels) in splits.items():
        name = shard_name(split, 0, 1)
        write_shard(src / name, images, labels)
        props[split] = {"count": len(labels), "files": [name]}
    if bad:
        import tensorflow as tf

        with tf.io.TFRecordWriter(str(src / shard_name("train", 0, 1))) as w:
            for image, label in zip(*splits["train"], strict=True):
                w.write(encode(image, label))
            for record in bad:
                w.write(record)
    meta = {
        "splits": props,
        "dtype": "uint8",
        "image_shape": image_shape,
        "class_names": [f"c{i}" for i in range(num_classes)],
        "num_classes": num_classes,
        "label_histogram": {},
    }
    (src / ARTIFACT_FILE).write_text(
        json.dumps({"type": "Examples", "fingerprint": "f", "producer": "t", "properties": meta})
    )
    return Artifact.load(src)


def run(root: Path, source: Artifact, params: Params):
    outputs = {}
    for name, kind in (("examples", "Examples"), ("statistics", "Statistics")):
        (root / name).mkdir()
        outputs[name] = OutputArtifact(str(root / name), kind)
    ctx = Context(
        params=params,
        inputs={"examples": source},
        outputs=outputs,
        work_dir=root / "work",
        tracker=RecordingTracker(),
        show_progress=False,
    )
    preprocess(ctx)
    out = outputs["examples"]
    (out.path / ARTIFACT_FILE).write_text(
        json.dumps(
            {
                "type": "Examples",
                "fingerprint": "o",
                "producer": "preprocess",
                "properties": out.properties,
            }
        )
    )
    return ctx, Artifact.load(out.path), outputs["statistics"]


def mixed_rgb(rng, sizes, n_each):
    images, labels = [], []
    for h, w in sizes:
        for _ in range(n_each):
            images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            labels.append(len(labels))
    return images, np.array(labels)


ALL_STEPS = Params(
    steps=["crop", "resize", "gcn", "lcn", "standardize"],
    size=12,
    gcn=GcnParams(scale=1.0, lam=0.01, eps=1e-8),
    lcn=LcnParams(kernel_size=5, sigma=1.5),
    max_rejected_fraction=0.2,
    num_samples=3,
)


def test_component_writes_examples_statistics_and_dead_letters(tmp_path):
    rng = np.random.default_rng(0)
    train = mixed_rgb(rng, [(20, 30), (31, 17)], 3)
    test = mixed_rgb(rng, [(16, 16)], 2)
    bad = [b"\x00garbage", encode(np.zeros((5, 5, 3), np.uint8), 10)]
    source = write_ingest(tmp_path, {"train": train, "test": test}, None, bad=bad)
    ctx, out, stats = run(tmp_path, source, ALL_STEPS)

    p = out.properties
    assert p["dtype"] == "float32" and p["image_shape"] == [12, 12, 3]
    assert p["splits"]["train"]["count"] == 6 and p["splits"]["test"]["count"] == 2
    assert p["class_names"] == source.properties["class_names"] and p["num_classes"] == 10
    assert p["label_histogram"]["train"] == [1] * 6 + [0] * 4
    assert p["preprocess"]["steps"] == list(ALL_STEPS.steps)
    assert len(p["preprocess"]["channel_mean"]) == 3 and p["preprocess"]["rejected"] == 2
    x, y = read_split(out, "train")
    assert x.shape == (6, 12, 12, 3) and x.dtype == np.float32 and sorted(y) == list(range(6))
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0, atol=1e-4)  # standardized on train
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1, atol=1e-3)

    statistics = json.loads((stats.path / "statistics.json").read_text())
    assert statistics["train"]["count"] == 6 and statistics["train"]["rejected"] == 2
    before, after = statistics["train"]["before"], statistics["train"]["after"]
    assert min(before["min"]) >= 0 and max(before["max"]) <= 255 and before["mean"][0] > 50
    np.testing.assert_allclose(after["mean"], 0, atol=1e-4)
    assert statistics["test"]["label_histogram"] == [1, 1] + [0] * 8
    dead = [json.loads(line) for line in (stats.path / "rejected.jsonl").read_text().splitlines()]
    assert [d["record"] for d in dead] == [6, 7]
    assert "not a tf.train.Example" in dead[0]["reason"] and "label 10" in dead[1]["reason"]
    assert stats.properties["beam_counters"]["records_rejected"] == 2
    with Image.open(stats.path / "samples.png") as png:
        assert png.size[1] > png.size[0]  # 3 rows of raw / GCN / LCN
    assert sorted(ctx.tracker.artifacts) == ["rejected.jsonl", "samples.png", "statistics.json"]
    assert ctx.metrics["images"] == 8 and ctx.metrics["rejected"] == 2


@pytest.mark.parametrize("case", ["default-gray", "all-steps-rgb"])
def test_beam_output_agrees_with_keras_layers(tmp_path, case):
    rng = np.random.default_rng(1)
    if case == "default-gray":
        images = rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8)
        images[3] = 77  # a constant image: GCN must give zeros in both paths
        train, params, shape = (images, np.arange(10)), Params(), [28, 28, 1]
    else:
        train, params, shape = mixed_rgb(rng, [(20, 30), (31, 17), (12, 12)], 3), ALL_STEPS, None
    source = write_ingest(tmp_path, {"train": train}, shape)
    _, out, _ = run(tmp_path, source, params)
    beam_x, beam_y = read_split(out, "train")
    model = build_preprocessor(out.properties)
    for image, label in zip(*train, strict=True):
        served = np.asarray(model(image[None]))[0]
        written = beam_x[list(beam_y).index(label)]
        assert served.shape == written.shape
        assert np.abs(served - written).max() <= 1e-5, label
    if case == "default-gray":
        assert np.array_equal(beam_x[list(beam_y).index(3)], np.zeros((28, 28, 1), np.float32))


def test_too_many_rejects_fail_with_a_clear_message(tmp_path):
    good = (np.zeros((1, 8, 8, 1), np.uint8), np.array([1]))
    bad = [encode(np.zeros((8, 8, 1), np.uint8), 99), b"junk"]
    source = write_ingest(tmp_path, {"train": good}, [8, 8, 1], bad=bad)
    with pytest.raises(ComponentError, match=r"2 of 3 records rejected .*max_rejected_fraction"):
        run(tmp_path, source, Params(size=8))


@pytest.mark.parametrize(
    ("params", "shape", "message"),
    [
        (Params(steps=["standardize", "gcn"]), [8, 8, 1], "'standardize' must be last"),
        (Params(steps=["gcn", "gcn"]), [8, 8, 1], "repeats a step"),
        (Params(steps=["crop", "gcn"]), None, "has no 'resize'"),
        (Params(steps=["lcn"], lcn=LcnParams(kernel_size=4)), [8, 8, 1], "kernel_size=4"),
    ],
)
def test_bad_settings_fail_before_running(tmp_path, params, shape, message):
    source = write_ingest(tmp_path, {"train": (np.zeros((1, 8, 8, 1), np.uint8), [0])}, shape)
    with pytest.raises(ComponentError, match=message):
        run(tmp_path, source, params)


def test_beam_options_default_and_passthrough():
    assert beam_options(Params()) == [
        "--runner=FnApiRunner",  # in-process: never Beam's Prism download
        "--direct_num_workers=1",
        "--direct_running_mode=in_memory",
    ]
    flags = beam_options(
        Params(
            direct_running_mode="multi_processing",
            direct_num_workers=3,
            beam_args=["--direct_num_workers=5"],
        )
    )
    assert flags[-1] == "--direct_num_workers=5" and "--direct_num_workers=3" in flags
    assert beam_options(Params(runner="FlinkRunner", beam_args=["--flink_master=h:8081"])) == [
        "--runner=FlinkRunner",
        "--flink_master=h:8081",
    ]
    dask = Params(runner="DaskRunner", beam_args=["--dask_client_address=tcp://h:8786"])
    assert beam_options(dask, num_shards=7) == [
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
        "--dask_npartitions=7",  # one partition per shard, so every worker gets work
        "--dask_client_address=tcp://h:8786",
    ]


def test_multi_processing_runner_gives_the_same_output(tmp_path):
    rng = np.random.default_rng(2)
    train = (rng.integers(0, 256, (6, 10, 10, 1), dtype=np.uint8), np.arange(6))
    source = write_ingest(tmp_path, {"train": train}, [10, 10, 1])
    params = Params(size=10, direct_running_mode="multi_processing", direct_num_workers=2)
    _, out, _ = run(tmp_path, source, params)
    x, y = read_split(out, "train")
    expected = np.asarray(build_preprocessor(out.properties)(train[0]))
    np.testing.assert_allclose(x[np.argsort(y)], expected, atol=1e-5)


def test_truncated_shard_keeps_whole_records_and_dead_letters_the_tail(tmp_path):
    images = np.arange(5 * 8 * 8, dtype=np.uint8).reshape(5, 8, 8, 1)
    source = write_ingest(tmp_path, {"train": (images, np.arange(5))}, [8, 8, 1])
    shard = source.path / source.properties["splits"]["train"]["files"][0]
    shard.write_bytes(shard.read_bytes()[:-30])  # cuts into the last record
    ctx, out, stats = run(tmp_path, source, Params(size=8, max_rejected_fraction=0.5))
    assert ctx.metrics["rejected"] == 1
    _, labels = read_split(out, "train")
    assert sorted(labels) == [0, 1, 2, 3]
    dead = [json.loads(line) for line in (stats.path / "rejected.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["record"] == 4
    assert "unreadable TFRecord data after record 3" in dead[0]["reason"]
