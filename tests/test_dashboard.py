"""What the MLflow UI and the terminal show: metric keys, run names, the parent row, noise."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from convflow.components.base import RAW_EXAMPLES, TRANSFORMED_EXAMPLES, Artifact
from convflow.components.train.executor import epoch_line
from convflow.components.train.spec import model_kwargs_for
from convflow.pipelines import dashboard, runner
from convflow.pipelines.quiet import is_noise
from mlflow.tracking import MlflowClient


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("f1_T-shirt/top", "f1_T-shirt_top"),
        ("recall_Ankle boot", "recall_Ankle_boot"),
        ("val_accuracy", "val_accuracy"),
        ("precision_Été/hiver", "precision_Ete_hiver"),
    ],
)
def test_metric_keys_are_flat_and_stable(name, key):
    assert dashboard.metric_key(name) == key
    assert dashboard.metric_key(key) == key


def test_sanitize_keeps_the_original_names_of_renamed_metrics():
    metrics, renamed = dashboard.sanitize_metrics({"f1_T-shirt/top": 0.5, "loss": 1.0})
    assert metrics == {"f1_T-shirt_top": 0.5, "loss": 1.0}
    assert renamed == {"f1_T-shirt_top": "f1_T-shirt/top"}


def test_run_name_reads_pipeline_model_and_short_key():
    class Train:
        model = "lenet5"

    sections = {"ingest": object(), "train": Train()}
    name = dashboard.run_name("fashion_mnist_lenet", sections, "3e2f9a")
    assert name == "fashion_mnist_lenet · lenet5 · 3e2f"


def test_result_line_names_figure_blessing_version_and_the_ui_command():
    head = {
        "metric": "accuracy",
        "value": 0.91234,
        "blessed": True,
        "model_name": "m",
        "version": "3",
        "aliases": ["challenger", "champion"],
    }
    line = dashboard.result_line(head, "sqlite:////tmp/x/mlflow.db", "1")
    assert line == (
        "result: accuracy 0.9123 · blessed · m v3 @challenger @champion"
        " · UI: convflow ui --tracking-uri sqlite:////tmp/x/mlflow.db"
    )
    served = dashboard.result_line({"metric": "accuracy"}, "http://127.0.0.1:5000", "7")
    assert served.endswith(
        "http://127.0.0.1:5000/#/experiments/7/runs"
        "?workflowType=machine_learning&viewStateShareKey=convflow"
    )


@pytest.mark.parametrize(
    "line",
    [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1796001880.636729   10637 port.cc:153] oneDNN custom operations are on.\n",
        "WARNING:root:apitools not found, and bigquery client libraries are not available\n",
        "2026/11/30 01:24:33 INFO mlflow.store.db.utils: Creating initial MLflow database tables\n",
        "Successfully registered model 'fashion_mnist_lenet'.\n",
    ],
)
def test_start_up_noise_is_recognised(line):
    assert is_noise(line)


@pytest.mark.parametrize(
    "line",
    [
        "WARNING:tensorflow:5 out of the last 5 calls to <function> triggered tf.function\n",
        "UserWarning: the model has no validation split\n",
        "E0000 00:00:1796001880.6 10637 op_kernel.cc:1857] OP_REQUIRES failed: OOM\n",
        "Traceback (most recent call last):\n",
        "error: train.model='nope': unknown model\n",
    ],
)
def test_real_warnings_and_errors_pass(line):
    assert not is_noise(line)


def test_filter_drops_noise_of_child_processes_and_keeps_the_rest(tmp_path):
    script = (
        "import subprocess, sys\n"
        "from convflow.pipelines.quiet import quiet_stderr\n"
        "with quiet_stderr():\n"
        "    subprocess.run(['sh', '-c', 'echo \"I0000 00:00:1.2   7 port.cc:153] noise\" >&2'])\n"
        "    print('WARNING:root:apitools not found, and so on', file=sys.stderr)\n"
        "    print('a real warning', file=sys.stderr)\n"
        "    sys.stderr.write('bar 50%\\r')\n"
        "print('after', file=sys.stderr)\n"
    )
    err = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env={**os.environ}, check=True
    ).stderr
    assert err == b"a real warning\nbar 50%\rafter\n"


def test_epoch_line_is_one_short_line():
    line = epoch_line(3, 10, {"loss": 0.41234, "accuracy": 0.85, "epoch_seconds": 12.34})
    assert line == "train: epoch 3/10 loss 0.4123 accuracy 0.8500 (12.3 s)"


def test_model_kwargs_keyed_by_model_apply_only_to_that_model():
    names = ["lenet5", "resnet20"]
    keyed = {"lenet5": {"filters": [16, 32]}}
    assert model_kwargs_for("lenet5", keyed, names) == {"filters": [16, 32]}
    assert model_kwargs_for("resnet20", keyed, names) == {}
    assert model_kwargs_for("lenet5", {"filters": [8, 16]}, names) == {"filters": [8, 16]}


def test_parent_row_of_a_real_and_a_cached_invocation(fakeflow, tmp_path, sqlite_uri):
    from fakeflow.pipeline import build

    pipeline, cfg = build(str(tmp_path / "store"), str(tmp_path / "log"))
    opts = runner.RunOptions(tracking_uri=sqlite_uri, show_progress=False)
    out = io.StringIO()
    _, first = runner.run(pipeline, cfg, opts, out=out)
    assert out.getvalue().splitlines()[-1].startswith("result: ")
    _, second = runner.run(pipeline, cfg, opts, out=io.StringIO())
    client = MlflowClient(sqlite_uri)
    exp = client.get_experiment_by_name("fake")
    assert exp.tags[dashboard.EXPERIMENT_KIND_TAG] == dashboard.MODEL_TRAINING_KIND
    one, two = client.get_run(first), client.get_run(second)
    assert one.info.run_name == two.info.run_name == f"fake · {cfg.hash[:4]}"
    (dataset,) = two.inputs.dataset_inputs  # the source step's Examples, digest = fingerprint
    produced = client.search_runs(
        [exp.experiment_id], filter_string="attributes.run_name = 'produce'"
    )
    assert len(produced) == 1
    assert dataset.dataset.digest and dataset.dataset.source_type == "local"


def test_the_dataset_input_is_the_ingested_raw_examples():
    # Typed artifacts: ingest publishes RawExamples, preprocess TransformedExamples.
    splits = {"train": {"count": 9}, "validation": {"count": 1}, "test": {"count": 3}}
    raw = Artifact("/s/ingest", RAW_EXAMPLES, "f" * 64, "ingest", {"splits": splits})
    moved = Artifact("/s/pre", TRANSFORMED_EXAMPLES, "e" * 64, "preprocess", {"splits": splits})
    artifacts = {"ingest.examples": raw, "preprocess.examples": moved}
    records = {"ingest": {"inputs": {}}, "preprocess": {"inputs": {"examples": {}}}}
    dataset = dashboard.dataset_entity(artifacts, records, "fashion-mnist")
    assert dataset.name == "fashion-mnist" and dataset.digest == "f" * 36
    assert json.loads(dataset.profile)["num_examples"] == 13
    assert dashboard.dataset_entity({"preprocess.examples": moved}, records, "x") is None
