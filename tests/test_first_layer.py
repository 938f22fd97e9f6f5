"""``train.first_layer``: kernels without supervised training, and greedy layer-wise
pretraining by a convolutional autoencoder (the lecture's Jarrett/Coates/Lee items)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from convflow.components.base import run_by_hand
from convflow.components.examples import read_split
from convflow.components.train import TrainParams, train
from convflow.components.train.executor import kernel_digest
from convflow.components.train.pretrain import autoencoder
from convflow.components.train.spec import PretrainParams
from convflow.models import zoo
from convflow.models.initializers import first_conv, get

sys.path.insert(0, str(Path(__file__).parent))
from fmnist_slices import raw_splits, write_examples

PARAMS = TrainParams(epochs=1, batch_size=64, seed=3, precision="float32")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    splits = raw_splits(600, 100, 100)
    floats = {k: (x.astype("float32") / 255.0, y) for k, (x, y) in splits.items()}
    return write_examples(tmp_path_factory.mktemp("examples"), floats, "float32")


def run_train(examples, root: Path, params: TrainParams):
    """(the published model artifact, the step's metrics, the trained Keras model)."""
    metrics: dict = {}
    art = run_by_hand(train, root, {"examples": examples}, params, metrics=metrics)["model"]
    return art, metrics, keras.saving.load_model(art.path / "model.keras")


def test_autoencoder_trains_the_first_layer_alone_from_images_only(examples):
    # The unsupervised stage sees images, never labels, and moves the first convolution only.
    images = read_split(examples, "train")[0]
    model = zoo.build("lenet5", input_shape=(28, 28, 1), num_classes=10, filters=(8, 16))
    before = {w.path: np.array(w) for w in model.weights}
    done = autoencoder(model, "c1_conv", images, PretrainParams(epochs=3), seed=0)
    after = {w.path: np.array(w) for w in model.weights}
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    assert "c1_conv/kernel" in moved
    assert moved <= {"c1_conv/kernel", "c1_conv/bias"}
    assert done.kernel_change > 0.01
    assert done.losses[-1] < done.losses[0]  # the reconstruction improves


@pytest.mark.slow
def test_autoencoder_frozen_keeps_the_pretrained_kernel_through_supervised_training(
    examples, tmp_path
):
    params = replace(PARAMS, first_layer="autoencoder_frozen", pretrain=PretrainParams(epochs=2))
    art, metrics, model = run_train(examples, tmp_path, params)
    facts = art.properties["first_layer"]
    conv = first_conv(model, "c1_conv")
    assert not conv.trainable
    # The kernel the supervised stage started from is the one it ended with.
    assert kernel_digest(conv) == facts["kernel_sha256"]
    assert facts["pretrain_kernel_change"] > 0.01
    assert metrics["pretrain_reconstruction_mse"] == facts["pretrain_losses"][-1]
    assert np.isfinite(metrics["loss"])


@pytest.mark.slow
def test_autoencoder_fine_tuned_moves_the_pretrained_kernel(examples, tmp_path):
    params = replace(PARAMS, first_layer="autoencoder_fine_tuned")
    art, _metrics, model = run_train(examples, tmp_path, params)
    conv = first_conv(model, "c1_conv")
    assert conv.trainable
    assert kernel_digest(conv) != art.properties["first_layer"]["kernel_sha256"]


@pytest.mark.parametrize("mode", ["random_frozen", "gabor_frozen"])
def test_frozen_first_layers_end_as_they_started(examples, tmp_path, mode):
    art, _metrics, model = run_train(examples, tmp_path, replace(PARAMS, first_layer=mode))
    conv = first_conv(model, "c1_conv")
    assert not conv.trainable
    assert kernel_digest(conv) == art.properties["first_layer"]["kernel_sha256"]
    if mode == "gabor_frozen":
        expected = np.asarray(get("gabor")(tuple(conv.kernel.shape)), dtype="float32")
        np.testing.assert_allclose(np.asarray(conv.kernel), expected, atol=1e-6)


def test_first_layer_and_first_layer_init_are_one_choice():
    with pytest.raises(ValueError, match=r"first_layer='gabor_frozen' sets the first convolution"):
        replace(PARAMS, first_layer="gabor_frozen", freeze_first_layer=True)


@pytest.mark.parametrize(
    ("kwargs", "c1_side", "s4_side"),
    [({}, 28, 5), ({"kernel_size": 3}, 30, 6), ({"padding": "same"}, 32, 8),
     ({"kernel_size": 7, "padding": "same"}, 32, 8)],
)  # fmt: skip
def test_lenet_kernel_width_and_zero_padding(kwargs, c1_side, s4_side):
    model = zoo.build("lenet5", input_shape=(28, 28, 1), num_classes=10, **kwargs)
    assert model.get_layer("c1_conv").output.shape[1] == c1_side
    assert model.get_layer("s4_pool").output.shape[1] == s4_side


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel_size": 11}, "kernel_size=11 with padding='valid' leaves no feature map"),
        ({"padding": "full"}, "padding"),
        ({"padding": "same", "conv": "local"}, "padding='same' needs conv='conv'"),
        ({"variant": "lecun1998", "kernel_size": 3}, "are for variant='modern'"),
    ],
)
def test_lenet_rejects_kernel_settings_it_cannot_build(kwargs, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("lenet5", input_shape=(28, 28, 1), num_classes=10, **kwargs)


def test_measure_train_split_scores_the_final_model_on_the_train_split(examples, tmp_path):
    _art, metrics, model = run_train(examples, tmp_path, replace(PARAMS, measure_train_split=True))
    images, labels = read_split(examples, "train")
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    assert metrics["train_split_accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-6)
