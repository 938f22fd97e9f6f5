"""Segmentation's training options: augmentation that would not move the masks is refused at
validate; U-Net's border weight map reaches the loss through tf.data, once per record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from convflow.pipelines.cli import main

HEAVY = ("tensorflow", "keras", "apache_beam")
CONFIGS = Path(__file__).parents[1] / "configs"
SEG_CONFIG = CONFIGS / "fashion_scenes_unet.yaml"
CLS_CONFIG = CONFIGS / "fashion_mnist_lenet.yaml"


def _validate(capsys, config: Path, *overrides: str) -> tuple[int, str]:
    sets = [a for o in overrides for a in ("--set", o)]
    code = main(["validate", str(config), *sets])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "override",
    [
        "train.augment.flip=horizontal",
        "train.augment.translation=0.1",
        "train.augment.zoom=0.2",
        "train.augment.crop_padding=4",
        "train.augment.rand_augment=true",
        "train.augment.mixup_alpha=0.2",
        "train.augment.cutmix_alpha=1.0",
    ],
)
def test_validate_refuses_augmentation_that_leaves_the_mask_behind(capsys, override):
    code, err = _validate(capsys, SEG_CONFIG, override)
    key = override.split("=")[0]
    assert code == 2
    assert "\n" not in err and err.startswith(f"error: {key}="), err
    assert "moves image pixels but not the mask" in err


def test_validate_accepts_photometric_augmentation_and_border_weights(capsys):
    code, err = _validate(
        capsys,
        SEG_CONFIG,
        "train.augment.contrast=0.3",
        "train.augment.erasing_probability=0.2",
        "train.pixel_weighting=unet_border",
        "register.probabilities=true",
    )
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("override", "telltale"),
    [
        ("train.pixel_weighting=unet_border", "error: train.pixel_weighting='unet_border'"),
        ("register.probabilities=true", "error: register.probabilities=true"),
    ],
)
def test_validate_refuses_dense_options_for_classification(capsys, override, telltale):
    code, err = _validate(capsys, CLS_CONFIG, override)
    assert code == 2
    assert "\n" not in err and err.startswith(telltale), err


def test_refusal_is_one_line_exit_2_without_importing_tensorflow(tmp_path):
    script = (
        "import sys\n"
        "from convflow.pipelines.cli import main\n"
        f"code = main(['validate', {str(SEG_CONFIG)!r}, '--set', 'train.augment.flip=vertical'])\n"
        f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.stdout.strip().splitlines()[-1] == "2 []"
    assert done.stderr.strip().startswith("error: train.augment.flip='vertical' moves image")
    assert len(done.stderr.strip().splitlines()) == 1


# --- U-Net's border weights through tf.data and the loss ----------------------------------


def _two_touching_garments() -> np.ndarray:
    """A 24×32 mask: class 1 and class 3, two pixels apart; one ignore pixel."""
    mask = np.zeros((24, 32), np.uint8)
    mask[6:18, 3:14] = 1
    mask[6:18, 16:28] = 3  # gap: columns 14 and 15
    mask[0, 0] = 255
    return mask


def _transformed_examples(root: Path, masks: np.ndarray):
    from convflow.components.base import ARTIFACT_FILE, TRANSFORMED_EXAMPLES, Artifact
    from convflow.components.examples import ExamplesInfo, TransformInfo, write_split
    from convflow.components.tasks.segmentation import MASK_FEATURES

    images = np.random.default_rng(0).normal(size=(*masks.shape, 1)).astype(np.float32)
    root.mkdir(parents=True)
    info = ExamplesInfo(
        splits={"train": write_split(root, "train", images, masks, features=MASK_FEATURES)},
        dtype="float32",
        image_shape=images.shape[1:],
        channels=1,
        class_names=("background", *(f"c{i}" for i in range(1, 11))),
        task="segmentation",
        transform=TransformInfo(("gcn",), "uint8", 1, value_range=(-5.0, 5.0)),
    )
    meta = {"type": TRANSFORMED_EXAMPLES, "fingerprint": "t", "producer": "tests"}
    (root / ARTIFACT_FILE).write_text(json.dumps({**meta, "properties": info.to_properties()}))
    return Artifact.load(root), images


@pytest.mark.slow
def test_train_dataset_carries_the_border_map_and_contrast_leaves_masks_and_weights(tmp_path):
    from convflow.components.tasks.segmentation import TASK
    from convflow.components.train import data
    from convflow.components.train.spec import AugmentParams, TrainParams
    from convflow.components.weight_maps import unet_weight_map

    mask = _two_touching_garments()
    masks = np.stack([mask, np.fliplr(mask), np.zeros_like(mask)])
    artifact, images = _transformed_examples(tmp_path / "ex", masks)
    params = TrainParams(
        model="unet", epochs=1, batch_size=3, pixel_weighting="unet_border",
        border_w0=10.0, border_sigma=5.0, augment=AugmentParams(contrast=0.9),
    )  # fmt: skip
    batches = list(data.train_dataset(artifact, params, 11, 0, TASK).as_numpy_iterator())
    assert len(batches) == 1 and len(batches[0]) == 3
    x, y, w = batches[0]
    order = [int(np.argmin([np.abs(m - t).sum() for m in masks])) for t in y]
    assert sorted(order) == [0, 1, 2]
    for i, k in enumerate(order):
        np.testing.assert_array_equal(y[i], masks[k])
        np.testing.assert_array_equal(w[i], unet_weight_map(masks[k], 10.0, 5.0))
    assert not np.allclose(x, images[order])  # contrast changed the pixels, not the targets
    plain = TrainParams(model="unet", epochs=1, batch_size=3)
    assert len(next(iter(data.train_dataset(artifact, plain, 11, 0, TASK)))) == 2


def test_border_weighted_loss_differs_exactly_where_the_map_says():
    import tensorflow as tf
    from convflow.components.tasks.segmentation import TASK
    from convflow.components.train.spec import TrainParams
    from convflow.components.weight_maps import unet_weight_map

    mask = _two_touching_garments()
    weigh = TASK.pixel_weights(TrainParams(model="unet", pixel_weighting="unet_border"))
    w = next(iter(tf.data.Dataset.from_tensors(mask).map(weigh))).numpy()
    np.testing.assert_array_equal(w, unet_weight_map(mask))
    loss = TASK.loss(TrainParams(model="unet"))
    logits = tf.constant(np.random.default_rng(1).normal(size=(1, *mask.shape, 11)), tf.float32)
    y = tf.constant(mask[None])

    def pixel_grads(sample_weight):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(y, logits, sample_weight=sample_weight)
        return np.abs(tape.gradient(value, logits).numpy()[0]).sum(-1)

    plain, weighted = pixel_grads(None), pixel_grads(tf.constant(w[None]))
    # Each pixel's gradient is scaled by its weight: changed exactly where the map is not 1.
    on = plain > 0
    np.testing.assert_allclose(weighted[on] / plain[on], w[on], rtol=1e-4)
    assert (plain[~on] == 0).all() and (weighted[~on] == 0).all()
    objects = (mask == 1) | (mask == 3)
    np.testing.assert_array_equal(weighted[objects], plain[objects])  # objects weigh 1
    assert (w[mask == 0] > 1).any() and (w[objects] == 1).all() and w[0, 0] == 0
    # The gap between the two garments weighs most: border pixels between touching objects.
    peak = np.unravel_index(np.argmax(weighted / np.where(on, plain, 1)), w.shape)
    assert peak[1] in (14, 15) and 6 <= peak[0] < 18
    assert w[peak] == pytest.approx(1 + 10 * np.exp(-9 / 50), rel=1e-5)  # d1 = 1, d2 = 2
