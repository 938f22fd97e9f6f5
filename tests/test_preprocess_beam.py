"""The Beam transforms of the preprocess job, with BeamPipeline and no file I/O."""

import json
import math

import apache_beam as beam
import keras
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline
from apache_beam.testing.util import assert_that, equal_to
from convflow.components.examples import decode, encode, encode_batch
from convflow.components.preprocess import beam_job
from convflow.components.preprocess.stats import MergeMoments
from convflow.models.layers import contrast
from tensorflow.core.example import example_pb2


def batch(split, part, images, labels=None):
    labels = np.arange(len(images)) if labels is None else np.asarray(labels)
    return beam_job.Batch(split, 0, part, np.asarray(images, np.float32), labels)


def rounded(b: beam_job.Batch):
    """A hashable, comparable view of a batch (for equal_to)."""
    return (b.split, b.part, b.images.shape, tuple(b.labels), tuple(np.round(b.images, 4).ravel()))


@pytest.fixture
def images():
    return np.random.default_rng(3).random((2, 6, 9, 3)).astype(np.float32)


def test_transforms_compute_the_contrast_functions(images):
    expected_gcn = contrast.global_contrast_normalize(images, 2.0, 0.5, 1e-8)
    expected = keras.ops.convert_to_numpy(
        contrast.local_contrast_normalize(
            contrast.resize(contrast.center_square_crop(expected_gcn), 4, "bilinear", False),
            3,
            1.0,
            1e-4,
        )
    )
    # GCN by hand, eq. 12.3, to tie the first step to the formula and not only to contrast.py
    x = images[0].astype(np.float64)
    by_hand = 2.0 * (x - x.mean()) / max(1e-8, math.sqrt(0.5 + ((x - x.mean()) ** 2).mean()))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(expected_gcn)[0], by_hand, atol=1e-5)
    with BeamPipeline() as p:
        out = (
            p
            | beam.Create([batch("train", 0, images)])
            | "GlobalContrastNormalize" >> beam_job.GlobalContrastNormalize(2.0, 0.5, 1e-8)
            | "CropToSquare" >> beam_job.CropToSquare()
            | "Resize" >> beam_job.ResizeImages(4, "bilinear", False)
            | "LocalContrastNormalize" >> beam_job.LocalContrastNormalize(3, 1.0, 1e-4)
        )
        assert_that(out | beam.Map(rounded), equal_to([rounded(batch("train", 0, expected))]))


def test_standardize_uses_training_statistics_only(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal([1.0, -2.0], [2.0, 0.5], (50, 4, 4, 2)).astype(np.float32)
    test = train + 10.0  # shifted: standardizing with its own stats would centre it at 0
    found = tmp_path / "stats.json"
    with BeamPipeline() as p:  # the analyze pass
        batches = p | beam.Create([batch("train", 0, train), batch("test", 0, test)])
        stats = batches | "Analyze" >> beam_job.TrainChannelStats()
        stats | beam.Map(lambda s: found.write_text(json.dumps(s)))
    stats = json.loads(found.read_text())
    np.testing.assert_allclose(
        stats["channel_mean"], train.mean(axis=(0, 1, 2), dtype=np.float64), rtol=1e-6
    )
    with BeamPipeline() as p:  # the transform pass, constants as plain values
        batches = p | beam.Create([batch("train", 0, train), batch("test", 0, test)])
        out = batches | "Standardize" >> beam_job.StandardizeChannels(stats)

        def check(actual):
            by_split = {b.split: b.images for b in actual}
            mean = by_split["train"].mean(axis=(0, 1, 2))
            std = by_split["train"].std(axis=(0, 1, 2))
            np.testing.assert_allclose(mean, [0, 0], atol=1e-4)
            np.testing.assert_allclose(std, [1, 1], atol=1e-4)
            expected = 10.0 / train.std(axis=(0, 1, 2), dtype=np.float64)
            np.testing.assert_allclose(by_split["test"].mean(axis=(0, 1, 2)), expected, rtol=1e-4)

        assert_that(out, check)


def test_moments_merge_in_origin_order_whatever_the_input_order():
    rng = np.random.default_rng(3)
    parts = [
        beam_job._moments(batch("train", i, rng.random((7, 3, 3, 1)) * 10**i)) for i in range(6)
    ]
    combine = MergeMoments()

    def merged(order):
        accs = [combine.add_input(combine.create_accumulator(), parts[i]) for i in order]
        return combine.extract_output(combine.merge_accumulators(accs))

    first, second = merged(range(6)), merged([5, 2, 0, 4, 1, 3])
    assert first.total.tobytes() == second.total.tobytes() and first.images == 42
    assert first.total_sq.tobytes() == second.total_sq.tobytes()


def raw_record(image_bytes, shape, label):
    ex = example_pb2.Example()
    ex.features.feature["image"].bytes_list.value.append(image_bytes)
    ex.features.feature["shape"].int64_list.value.extend(shape)
    ex.features.feature["label"].int64_list.value.append(label)
    return ex.SerializeToString()


GOOD = np.full((4, 4, 1), 0.5, np.float32)
NAN = GOOD.copy()
NAN[1, 2] = np.nan
BAD_RECORDS = {  # index in the shard -> (record, the reason's telltale)
    1: (encode(np.zeros((4, 4, 3), np.float32), 2), "3 channels; expected 1"),
    3: (raw_record(b"\0" * 10, [4, 4, 1], 1), "do not match shape [4, 4, 1]"),
    4: (encode(GOOD, 12), "label 12 outside [0, 10)"),
    6: (encode(NAN, 0), "non-finite"),
}


@pytest.mark.parametrize("garbage", [False, True], ids=["batch-parse", "one-by-one"])
def test_bad_records_are_dead_lettered_and_counted(garbage):
    bad = dict(BAD_RECORDS)
    if garbage:  # not an Example at all: forces the per-record fallback for the shard
        bad[7] = (b"\xff\xfe not a protobuf", "not a tf.train.Example")
    records = [encode(GOOD * (i + 1) / 10, i % 10) for i in range(9)]
    for i, (record, _) in bad.items():
        records[i] = record
    shard = beam_job.Shard("train", 0, "train-0.tfrecord", np.array(records, dtype=object))
    p = BeamPipeline()
    out = (
        p
        | beam.Create([shard])
        | beam.ParDo(beam_job.DecodeRecords("float32", channels=1, num_classes=10, batch_size=3))
        | beam_job.SplitByKind()
    )
    good = [i for i in range(9) if i not in bad]
    expected = [(0, good[:3], good[:3]), (1, good[3:], good[3:])]  # labels and pixels say i
    assert_that(
        out["batches"]
        | beam.Map(
            lambda b: (b.part, b.labels.tolist(), np.round(b.images[:, 0, 0, 0] * 20 - 1).tolist())
        ),
        equal_to(expected),
    )

    def check_rejected(actual):
        assert sorted(r.record for r in actual) == sorted(bad)
        for r in actual:
            assert r.split == "train" and r.file == "train-0.tfrecord"
            assert bad[r.record][1] in r.reason, r

    assert_that(out[beam_job.REJECTED], check_rejected, label="Rejected")
    assert_that(out["reads"], equal_to([beam_job.ShardRead("train", 0, 9)]), label="Reads")
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("preprocess"))["counters"]
    }
    assert counters == {"records_read": 9, "records_rejected": len(bad)}


def test_mixed_sizes_become_same_shape_batches():
    records = [encode(np.zeros((h, w, 3), np.uint8), 0) for h, w in [(5, 7), (8, 8), (5, 7)]]
    shard = beam_job.Shard("test", 2, "f", np.array(records, dtype=object))
    with BeamPipeline() as p:
        read = beam.ParDo(beam_job.DecodeRecords("uint8", 3, None, 10))
        out = p | beam.Create([shard]) | read | beam_job.SplitByKind()
        assert_that(
            out["batches"] | beam.Map(lambda b: (b.split, b.shard, b.part, b.images.shape)),
            equal_to([("test", 2, 0, (2, 5, 7, 3)), ("test", 2, 1, (1, 8, 8, 3))]),
        )


def test_steps_are_labelled_in_the_pipeline():
    spec = beam_job.JobSpec(
        tasks=(("train", 0, "unused"),),
        out_dir="",
        summary_path="",
        rejected_path="",
        dtype="uint8",
        channels=1,
        num_classes=10,
        steps=("crop", "resize", "gcn", "lcn", "standardize"),
        transform={
            "resize": {"size": 8, "interpolation": "bilinear", "antialias": True},
            "gcn": {"scale": 1.0, "lam": 0.0, "eps": 1e-8},
            "lcn": {"kernel_size": 3, "sigma": 1.0, "floor": 1e-4},
        },
        batch_size=10,
    )
    stats = {"channel_mean": [0.0], "channel_std": [1.0]}
    names = set()
    for build in (beam_job.build_analyze, lambda p, spec: beam_job.build(p, spec, stats)):
        p = beam.Pipeline()
        build(p, spec)
        names |= {t.unique_name for t in p.to_runner_api().components.transforms.values()}
    for label in [
        "ScaleToUnit",
        "CropToSquare",
        "Resize",
        "GlobalContrastNormalize",
        "LocalContrastNormalize",
        "AnalyzeTrainChannels",
        "Standardize",
        "ReadShards",
        "WriteShards",
    ]:
        assert label in names, sorted(names)


@pytest.mark.parametrize(
    ("shape", "dtype"), [((3, 28, 28, 1), np.float32), ((2, 300, 200, 3), np.uint8)]
)
def test_encode_batch_writes_the_examples_format(shape, dtype):
    images = (np.random.default_rng(1).random(shape) * 200).astype(dtype)
    labels = np.array([0, 9, 400][: shape[0]])
    for image, label, record in zip(images, labels, encode_batch(images, labels), strict=True):
        # Reference: the same record built with the protobuf API.
        reference = example_pb2.Example()
        feature = reference.features.feature
        feature["image"].bytes_list.value.append(image.tobytes())
        feature["shape"].int64_list.value.extend(image.shape)
        feature["label"].int64_list.value.append(int(label))
        assert example_pb2.Example.FromString(record) == reference
        assert encode(image, label) == record
        got, got_label = decode(record, np.dtype(dtype).name)
        np.testing.assert_array_equal(got, image)
        assert got_label == label
