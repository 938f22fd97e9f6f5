"""The one preprocess Beam job on a real Dask cluster, and the runner checks that stay offline.

The cluster (a ``dask scheduler`` and two ``dask worker`` processes on loopback) stands in for
several hosts; the test starts it and stops it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port
from convflow.components.base import ComponentError
from convflow.components.examples import encode, shard_name, write_shard
from convflow.components.preprocess import Params, preprocess
from convflow.components.transforms import GcnParams, LcnParams
from convflow.pipelines.cache import fingerprint_dir
from fmnist_slices import load_idx, run_component, write_examples
from services import dask_cluster

STEPS = ["crop", "resize", "gcn", "lcn", "standardize"]
BAD = [b"\x00 not an Example", encode(np.zeros((28, 28, 1), np.uint8), 10)]


def raw_with_dead_letters(root: Path):
    """Real Fashion-MNIST in 3 train shards + 1 test shard, two bad records in shard 1."""
    images, labels = load_idx("train", 0, 900)
    test = load_idx("t10k", 0, 200)
    raw = write_examples(root, {"test": test}, "uint8")
    files = []
    for i in range(3):
        name = shard_name("train", i, 3)
        write_shard(root / name, images[i * 300 : (i + 1) * 300], labels[i * 300 : (i + 1) * 300])
        files.append(name)
    import tensorflow as tf

    good = [encode(x, y) for x, y in zip(images[300:600], labels[300:600], strict=True)]
    with tf.io.TFRecordWriter(str(root / files[1])) as w:
        for record in [*good, *BAD]:
            w.write(record)
    meta = json.loads((root / "artifact.json").read_text())
    meta["properties"]["splits"]["train"] = {"count": 902, "files": files}
    (root / "artifact.json").write_text(json.dumps(meta))
    return type(raw).load(root)


def store_fingerprint(artifact) -> str:
    """The fingerprint the artifact store gives a published output (files + properties)."""
    props = json.dumps(artifact.properties, sort_keys=True, default=str)
    files = fingerprint_dir(artifact.path)
    return hashlib.sha256(f"{files}\0{props}".encode()).hexdigest()


def params(runner: str, *beam_args: str) -> Params:
    return Params(
        steps=STEPS,
        size=24,
        gcn=GcnParams(lam=0.01),
        lcn=LcnParams(kernel_size=5, sigma=1.5),
        batch_size=128,
        runner=runner,
        beam_args=list(beam_args),
        max_rejected_fraction=0.05,
    )


@pytest.mark.slow
def test_dask_runner_gives_the_direct_runners_artifacts(tmp_path):
    from distributed import Client

    raw = raw_with_dead_letters(tmp_path / "raw")
    direct = run_component(
        preprocess, tmp_path / "direct", {"examples": raw}, params("DirectRunner")
    )
    with dask_cluster(tmp_path / "dask") as address:
        flags = (f"--dask_client_address={address}",)
        dask = run_component(
            preprocess, tmp_path / "on_dask", {"examples": raw}, params("DaskRunner", *flags)
        )
        with Client(address) as client:  # the work ran on both workers, not in this process
            tasks = client.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert len(tasks) == 2 and all(n > 0 for n in tasks.values()), tasks

    for name in ("examples", "statistics"):
        assert store_fingerprint(dask[name]) == store_fingerprint(direct[name]), name
    stats = dask["statistics"]
    assert stats.properties["beam_counters"] == {
        "records_read": 1102,
        "records_rejected": 2,
        "records_written": 1100,
    }
    dead = [json.loads(x) for x in (stats.path / "rejected.jsonl").read_text().splitlines()]
    assert [(d["file"], d["record"]) for d in dead] == [
        (shard_name("train", 1, 3), 300),
        (shard_name("train", 1, 3), 301),
    ]
    assert dask["examples"].properties["splits"]["train"]["count"] == 900
    assert dask["examples"].properties["preprocess"]["channel_mean"] is not None


def test_unreachable_dask_scheduler_is_one_line(tmp_path):
    raw = write_examples(tmp_path / "raw", {"train": load_idx("train", 0, 10)}, "uint8")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    p = params("DaskRunner", f"--dask_client_address={address}", "--dask_connection_timeout=3")
    with pytest.raises(ComponentError) as e:
        run_component(preprocess, tmp_path / "out", {"examples": raw}, p)
    assert str(e.value).startswith(f"preprocess.runner=DaskRunner could not reach {address}")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("runner", "args", "message"),
    [
        ("FlinkRunner", [], "would download Beam's Flink job-server jar, which fails offline"),
        ("SparkRunner", ["--spark_master_url=spark://h:7077"], "--spark_job_server_jar=/path"),
        ("FlinkRunner", ["--flink_job_server_jar=/nowhere/x.jar"], "/nowhere/x.jar does not"),
        ("PrismRunner", [], "--prism_location=/path/to/prism"),
        ("DaskRunner", [], "--dask_client_address=tcp://HOST:8786"),
    ],
)
def test_runners_that_would_download_or_have_no_cluster_fail_with_one_line(
    tmp_path, runner, args, message
):
    raw = write_examples(tmp_path / "raw", {"train": load_idx("train", 0, 10)}, "uint8")
    with pytest.raises(ComponentError, match=re.escape(message)) as e:
        run_component(preprocess, tmp_path / "out", {"examples": raw}, params(runner, *args))
    assert "\n" not in str(e.value)
