"""Structured-output models (segmentation, dilated context) and the 1-D / 3-D classifiers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow.models.dilated import build_context_module
from convflow.models.zoo import build, list_models

SMALL = {
    "fcn8s": {"width_multiplier": 0.0625, "fc_filters": 32},
    "segnet": {"width_multiplier": 0.0625},
    "deconvnet": {"width_multiplier": 0.0625, "fc_filters": 32},
    "unet": {"base_filters": 4, "depth": 3},
    "dilated_large": {"width_multiplier": 0.0625, "fc_filters": 32},
}


def test_every_segmentation_model_is_in_the_registry():
    assert set(SMALL) | {"fcn16s", "fcn32s", "dilated_basic"} <= set(list_models("segmentation"))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_segmentation_output_is_per_pixel_class_probabilities_at_input_size(name):
    model = build(name, input_shape=(32, 64, 1), num_classes=3, **SMALL[name])
    x = np.random.default_rng(0).uniform(size=(2, 32, 64, 1)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    assert y.shape == (2, 32, 64, 3)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)  # softmax over classes
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    features = build(name, input_shape=(32, 64, 1), num_classes=3, include_top=False,
                     pooling="avg", **SMALL[name])  # fmt: skip
    assert len(features.output.shape) == 2


@pytest.mark.parametrize("name, divisor", [("segnet", 32), ("unet", 16), ("dilated_basic", 8)])
def test_sizes_that_do_not_divide_give_one_clear_error(name, divisor):
    with pytest.raises(ValueError, match=rf"multiples of {divisor}; got input_shape=\(36, 36, 3\)"):
        build(name, input_shape=(36, 36, 3), num_classes=2)


def test_deconvnet_needs_a_fixed_size_because_fc6_spans_the_whole_map():
    with pytest.raises(ValueError, match="needs a fixed H and W"):
        build("deconvnet", input_shape=(None, None, 3), num_classes=2)
    model = build("deconvnet", input_shape=(64, 32, 3), num_classes=2, **SMALL["deconvnet"])
    assert model.get_layer("fc6_conv").kernel.shape[:2] == (2, 1)  # 64/32 × 32/32


def test_segnet_and_deconvnet_unpool_with_the_matching_encoder_switches():
    segnet = build("segnet", input_shape=(32, 32, 3), num_classes=2, **SMALL["segnet"])
    deconv = build("deconvnet", input_shape=(32, 32, 3), num_classes=2, **SMALL["deconvnet"])
    for model, enc, dec in (
        (segnet, "encoder{}_pool", "decoder{}_unpool"),
        (deconv, "conv{}_pool", "deconv{}_unpool"),
    ):
        for stage in range(1, 6):
            switches = model.get_layer(enc.format(stage)).output[1]
            assert model.get_layer(dec.format(stage)).input[1] is switches


def test_unet_concatenates_the_skip_of_each_level():
    model = build("unet", input_shape=(32, 32, 1), num_classes=2, base_filters=4, depth=3)
    for level, width in ((1, 4), (2, 8), (3, 16)):
        concat = model.get_layer(f"up{level}_concat")
        assert concat.input[0] is model.get_layer(f"down{level}_2_relu").output
        assert concat.output.shape[-1] == 2 * width


def test_fcn8s_fuses_pool4_and_pool3_scores_and_fcn32s_fuses_none():
    fcn8 = build("fcn8s", input_shape=(64, 64, 3), num_classes=4, **SMALL["fcn8s"])
    assert fcn8.get_layer("fuse_pool4").output.shape[1:] == (4, 4, 4)
    assert fcn8.get_layer("fuse_pool3").output.shape[1:] == (8, 8, 4)
    assert fcn8.get_layer("upscore8").strides == (8, 8)
    fcn32 = build("fcn32s", input_shape=(64, 64, 3), num_classes=4, **SMALL["fcn8s"])
    assert not any(layer.name.startswith("fuse") for layer in fcn32.layers)
    assert fcn32.get_layer("upscore32").strides == (32, 32)


def test_dilated_front_end_keeps_one_eighth_resolution():
    model = build("dilated_basic", input_shape=(64, 64, 3), num_classes=3,
                  **SMALL["dilated_large"])  # fmt: skip
    assert model.get_layer("final").output.shape[1:] == (8, 8, 3)
    assert model.get_layer("context_8").output.shape[1:] == (8, 8, 3)
    assert [model.get_layer(f"context_{i}").dilation_rate[0] for i in range(1, 8)] == [
        1, 1, 2, 4, 8, 16, 1,
    ]  # fmt: skip


def test_context_module_receptive_field_is_67x67():
    # Impulse response with all-positive weights: output (i, j) is non-zero exactly when the
    # impulse lies in its receptive field, so the response's extent is the receptive field.
    module = build_context_module(1, "basic", input_shape=(101, 101))
    module.set_weights([np.ones_like(w) if w.ndim == 4 else np.zeros_like(w)
                        for w in module.get_weights()])  # fmt: skip
    impulse = np.zeros((1, 101, 101, 1), "float32")
    impulse[0, 50, 50, 0] = 1.0
    response = keras.ops.convert_to_numpy(module(impulse))[0, :, :, 0]
    rows, cols = np.nonzero(response)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (17, 83, 17, 83)
    assert rows.max() - rows.min() + 1 == 67


@pytest.mark.parametrize("variant", ["basic", "large"])
def test_identity_initialization_passes_non_negative_input_through(variant):
    module = build_context_module(3, variant, input_shape=(24, 24))
    # Quarter-integers stay exact even where a GPU convolves in TF32 (10-bit mantissa).
    x = (np.random.default_rng(0).integers(0, 20, size=(2, 24, 24, 3)) / 4).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(module(x)), x, rtol=1e-6, atol=1e-6)
    # The ReLU after each layer ("truncation") zeroes negative scores.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(module(-x)), 0.0, atol=1e-6)


def test_untrained_dilated_model_equals_its_front_end_when_context_is_identity():
    kwargs = {"input_shape": (32, 32, 3), "num_classes": 3, **SMALL["dilated_large"]}
    with_context = build("dilated_large", classifier_activation=None, **kwargs)
    front = keras.Model(with_context.input, with_context.get_layer("final").output)
    x = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype("float32")
    scores = np.maximum(keras.ops.convert_to_numpy(front(x)), 0.0)
    context = keras.Model(with_context.input, with_context.get_layer("context_8").output)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(context(x)), scores, rtol=1e-4, atol=1e-6)


def test_waveform_classifier_takes_any_length_above_its_minimum():
    model = build("audio_m5", input_shape=(None, 1), num_classes=4, width_multiplier=0.125)
    for length in (1024, 3000):
        x = np.random.default_rng(0).normal(size=(2, length, 1)).astype("float32")
        assert keras.ops.convert_to_numpy(model(x)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"at least 1024.*\(1000, 1\)"):
        build("audio_m5", input_shape=(1000, 1), num_classes=4)
    with pytest.raises(ValueError, match="takes waveforms"):
        build("audio_m5", input_shape=(2048, 2048, 1), num_classes=4)


def test_m5_follows_the_paper_table():
    model = build("audio_m5", input_shape=(32000, 1), num_classes=10)
    assert model.get_layer("stem_conv").kernel.shape == (80, 1, 128)
    assert model.get_layer("stem_conv").strides == (4,)
    # 32000 -> 8000 (stride 4) -> 2000 -> 500 -> 125 -> 31 after the four 4× pools.
    assert model.get_layer("block3_pool").output.shape[1:] == (31, 512)


def test_volumetric_models_take_video_and_voxels():
    c3d = build(
        "c3d", input_shape=(8, 32, 32, 3), num_classes=4, width_multiplier=0.0625, fc_units=16
    )
    x = np.random.default_rng(0).uniform(size=(1, 8, 32, 32, 3)).astype("float32")
    assert keras.ops.convert_to_numpy(c3d(x)).shape == (1, 4)
    assert c3d.get_layer("pool1").pool_size == (1, 2, 2)  # keeps time early on
    assert c3d.get_layer("pool5").output.shape[1:4] == (1, 1, 1)
    voxnet = build("voxnet", num_classes=10)
    # conv 5³/2 (valid) 32 -> 14, conv 3³ -> 12, pool -> 6; 0.92 M parameters.
    assert voxnet.get_layer("pool2").output.shape[1:] == (6, 6, 6, 32)
    assert (
        voxnet.count_params()
        == (125 * 32 + 32) + (27 * 32 * 32 + 32) + (6**3 * 32 * 128 + 128) + 1290
    )
    with pytest.raises(ValueError, match="fixed volumes"):
        build("voxnet", input_shape=(None, 32, 32, 1), num_classes=2)


def test_segnet_trains_through_its_switches():
    # Two stages keep the graph small; the unpooling path is the same as in the full table.
    model = build("segnet", input_shape=(16, 16, 1), num_classes=2, stages=((8, 2), (16, 2)))
    # One-hot + categorical cross-entropy: Keras 3.15's torch backend runs the sparse loss through
    # nll_loss2d on a non-contiguous view, whose CUDA backward fails ("grad_input must be
    # contiguous") for any dense-prediction model.
    model.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 16, 16, 1)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[..., 0] > 0.5).astype("int32")]  # a per-pixel rule
    losses = model.fit(x, y, epochs=4, batch_size=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
