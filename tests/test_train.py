"""The train component: reproducibility, resume after SIGKILL, schedules, precision."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from convflow.components.base import MODEL, ComponentError, Context, OutputArtifact
from convflow.components.train import TrainParams, train
from convflow.components.train.optim import WarmupSchedule
from convflow.components.train.runtime import cpu_supports_bfloat16, resolve_precision
from convflow.components.train.spec import EarlyStoppingParams

sys.path.insert(0, str(Path(__file__).parent))
from fmnist_slices import raw_splits, write_examples

# Small and exact: no augmentation (its random stream restarts on resume), op determinism on.
PARAMS = TrainParams(epochs=3, batch_size=64, deterministic=True, seed=7)
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from convflow.components.base import Artifact, Context, OutputArtifact
    from convflow.components.train import TrainParams, train
    from convflow.components.train.checkpoint import EpochCheckpoint

    examples, out, work, slow = sys.argv[1:5]
    if slow == "1":  # the killed run: sleep after epoch 2 is on disk, so the kill lands there
        original = EpochCheckpoint.on_epoch_end
        def on_epoch_end(self, epoch, logs=None):
            original(self, epoch, logs)
            if epoch == 1:
                time.sleep(120)
        EpochCheckpoint.on_epoch_end = on_epoch_end
    params = TrainParams(epochs=3, batch_size=64, deterministic=True, seed=7)
    ctx = Context(params=params, inputs={"examples": Artifact.load(examples)},
                  outputs={"model": OutputArtifact(out, "Model")}, work_dir=Path(work),
                  show_progress=False)
    train(ctx)
    print("PROPS", __import__("json").dumps(ctx.outputs["model"].properties))
    """
)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    splits = raw_splits(600, 200, 100)
    floats = {k: (x.astype("float32") / 255.0, y) for k, (x, y) in splits.items()}
    return write_examples(tmp_path_factory.mktemp("examples"), floats, "float32")


def run_train(examples, root: Path, params: TrainParams = PARAMS) -> Context:
    out = root / "model"
    out.mkdir(parents=True)
    ctx = Context(
        params=params,
        inputs={"examples": examples},
        outputs={"model": OutputArtifact(str(out), MODEL)},
        work_dir=root / "work",
        show_progress=False,
    )
    train(ctx)
    return ctx


@pytest.fixture(scope="module")
def reference(examples, tmp_path_factory):
    return run_train(examples, tmp_path_factory.mktemp("reference"))


def test_train_writes_model_plots_and_learns(reference):
    out = Path(reference.outputs["model"].uri)
    props = reference.outputs["model"].properties
    for name in ["model.keras", "history.json", "model_summary.txt", "training_curves.png",
                 "first_layer_kernels.png"]:  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert props["epochs_run"] == 3 and props["resumed_from_epoch"] == 0
    assert props["precision"] == resolve_precision("auto")
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_accuracy"]) == 3
    assert history["loss"][-1] < history["loss"][0]
    assert reference.metrics["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert (Path(reference.work_dir) / "ckpt" / "epoch-0003.keras").exists()


def test_same_config_and_data_give_identical_metrics(examples, reference, tmp_path):
    again = run_train(examples, tmp_path)
    timing = {"images_per_second"}
    assert len(again.metrics) > 5
    assert {k: v for k, v in again.metrics.items() if k not in timing} == {
        k: v for k, v in reference.metrics.items() if k not in timing
    }


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_last_finished_epoch(examples, reference, tmp_path):
    out, work = tmp_path / "model", tmp_path / "work"
    args = [sys.executable, "-c", CHILD, examples.uri, str(out), str(work)]
    out.mkdir()
    child = subprocess.Popen([*args, "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state = work / "ckpt" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and child.poll() is None:
        if state.exists() and json.loads(state.read_text())["epochs_done"] == 2:
            break
        time.sleep(0.2)
    assert child.poll() is None, child.stdout.read().decode()[-2000:]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert json.loads(state.read_text())["epochs_done"] == 2
    assert not any(out.iterdir())  # killed before publishing anything

    done = subprocess.run([*args, "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "resuming from epoch 2/3" in done.stdout
    props = json.loads(done.stdout.split("PROPS ", 1)[1])
    assert props["resumed_from_epoch"] == 2 and props["epochs_run"] == 3
    # Weights, optimizer state and the (seed, epoch) data order all came back: the resumed
    # run ends exactly where the uninterrupted one did.
    assert props["metrics"]["val_loss"] == reference.metrics["val_loss"]
    assert props["metrics"]["accuracy"] == reference.metrics["accuracy"]


def test_early_stopping_on_missing_validation_is_a_clear_error(tmp_path):
    splits = raw_splits(64, 0, 0)
    floats = {"train": (splits["train"][0].astype("float32") / 255.0, splits["train"][1])}
    examples = write_examples(tmp_path / "ex", floats, "float32")
    params = replace(PARAMS, early_stopping=EarlyStoppingParams(patience=2, monitor="val_loss"))
    with pytest.raises(ComponentError, match="monitor='val_loss' needs a validation split"):
        run_train(examples, tmp_path / "run", params)


def test_raw_examples_are_rejected_with_what_to_do(tmp_path):
    examples = write_examples(tmp_path / "ex", raw_splits(32, 8, 8), "uint8")
    with pytest.raises(ComponentError, match="wire train to the preprocess step"):
        run_train(examples, tmp_path / "run")


@pytest.mark.parametrize(
    ("kind", "step", "expected"),
    [
        ("constant", 0, 0.05),  # warm-up: (step + 1) / 10 of the peak
        ("constant", 9, 0.5),
        ("constant", 50, 0.5),
        ("cosine", 10, 0.5),
        ("cosine", 60, 0.25),  # halfway through the 100 decay steps
        ("cosine", 110, 0.0),
        ("step", 29, 0.5),
        ("step", 30, 0.05),  # one decay 20 steps after warm-up... and again at 30
    ],
)
def test_learning_rate_schedules(kind, step, expected):
    schedule = WarmupSchedule(kind, 0.5, total_steps=110, warmup_steps=10, step_every=10)
    if kind == "step":
        expected = {29: 0.5 * 0.1**1, 30: 0.5 * 0.1**2}[step]
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_auto_precision_per_device():
    assert resolve_precision("auto", has_gpu=True) == "mixed_float16"
    assert resolve_precision("float32", has_gpu=True) == "float32"
    cpu = "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
    assert resolve_precision("auto", has_gpu=False) == cpu
    assert cpu_supports_bfloat16("flags\t\t: fpu sse avx512f avx512_bf16\n")
    assert not cpu_supports_bfloat16("flags\t\t: fpu sse avx2\n")


def test_float16_gets_loss_scaling_and_float32_logits():
    import keras
    from convflow.components.train.executor import build_network
    from convflow.components.train.optim import make_loss, make_optimizer
    from convflow.components.train.runtime import dtype_policy

    with dtype_policy("mixed_float16"):
        model = build_network(PARAMS, (28, 28, 1), 10)
        model.compile(optimizer=make_optimizer(PARAMS, 10), loss=make_loss(PARAMS))
    assert keras.config.dtype_policy().name == "float32"  # restored afterwards
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.get_layer("c1_conv").compute_dtype == "float16"
    logits = model(np.zeros((2, 28, 28, 1), "float32"))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


@pytest.mark.parametrize("strategy", ["mirrored", "multi_worker_mirrored"])
def test_distribution_strategies_train_on_one_host(examples, tmp_path, strategy):
    params = replace(PARAMS, epochs=1, strategy=strategy, deterministic=False)
    ctx = run_train(examples, tmp_path, params)
    assert ctx.outputs["model"].properties["strategy"] == strategy
    assert ctx.metrics["epochs_run"] == 1 and np.isfinite(ctx.metrics["val_loss"])


def test_first_layer_from_kmeans_kernels_stays_frozen(examples, tmp_path):
    # The lecture's "kernels without supervised training": k-means centroids of whitened
    # patches of the training images, kept fixed while the rest of the network trains.
    import keras
    from convflow.models.initializers import first_conv

    params = replace(
        PARAMS, epochs=1, first_layer_init={"name": "kmeans", "seed": 0}, freeze_first_layer=True
    )
    ctx = run_train(examples, tmp_path, params)
    model = keras.saving.load_model(Path(ctx.outputs["model"].uri) / "model.keras")
    kernel = np.asarray(first_conv(model).kernel)
    assert not first_conv(model).trainable
    # Spherical k-means centroids, whitening folded in: no two output kernels are equal, and
    # re-learning them from the same images with the same seed gives the same kernels.
    from convflow.components.examples import read_split
    from convflow.models.initializers import get

    again = np.asarray(
        get({"name": "kmeans", "seed": 0, "patches_from": read_split(examples, "train")[0][:5000]})(
            kernel.shape
        )
    )
    np.testing.assert_allclose(kernel, again, rtol=1e-5, atol=1e-6)
    assert len({kernel[..., o].tobytes() for o in range(kernel.shape[-1])}) == kernel.shape[-1]


def test_unknown_first_layer_init_is_one_clear_error():
    # Rejected when the params are made (so at `convflow validate`), before any training.
    with pytest.raises(ValueError, match=r"first_layer_init.name='nope' is unknown"):
        replace(PARAMS, epochs=1, first_layer_init={"name": "nope"})


@pytest.mark.parametrize("conv", ["conv", "tiled", "local"])
def test_first_layer_kernels_draws_shared_kernels_and_skips_unshared_ones(conv, tmp_path):
    from convflow.components.train import plots
    from convflow.models.lenet import LeNet5

    model = LeNet5(input_shape=(28, 28, 1), filters=(4, 8), conv=conv)
    got = plots.first_layer_kernels(model, tmp_path / "k.png", "c1_conv")
    assert got == (tmp_path / "k.png" if conv == "conv" else None)
    assert (tmp_path / "k.png").exists() == (conv == "conv")
