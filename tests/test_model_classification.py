"""Classification families: parameter counts against the papers, size limits, family knobs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow import models
from convflow.models.alexnet import AlexNet
from convflow.models.densenet import DenseNet, DenseNetBC
from convflow.models.googlenet import INCEPTION, GoogLeNet
from convflow.models.lenet import C3_TABLE, ConnectionTableConv2D, LeNet5, Subsampling2D
from convflow.models.resnet import CifarResNet, ResNet, ZeroPadShortcut
from convflow.models.vgg import VGG


def trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# Registered models at their defaults: 224×224×3, 1000 classes. keras.applications counts
# (conv biases and BatchNormalization moving statistics included) where they exist.
IMAGENET_COUNTS = [
    ("vgg16", 138_357_544),  # keras.applications.VGG16; paper Table 2: 138M
    ("vgg19", 143_667_240),  # keras.applications.VGG19; paper Table 2: 144M
    ("resnet50", 25_636_712),  # keras.applications.ResNet50
    ("densenet121", 8_062_504),  # keras.applications.DenseNet121
    # The paper's two-tower AlexNet has 60,965,224 ("60 million"); merging the towers of
    # conv2/4/5 doubles their inputs.
    ("alexnet", 62_378_344),
]
SLOW_COUNTS = [
    ("resnet101", 44_707_176),  # keras.applications.ResNet101
    ("resnet152", 60_419_944),  # keras.applications.ResNet152
    ("densenet169", 14_307_880),  # keras.applications.DenseNet169
    ("densenet201", 20_242_984),  # keras.applications.DenseNet201
]


@pytest.mark.parametrize("name, count", IMAGENET_COUNTS)
def test_imagenet_parameter_counts(name, count):
    assert models.build(name).count_params() == count


@pytest.mark.slow
@pytest.mark.parametrize("name, count", SLOW_COUNTS)
def test_deep_imagenet_parameter_counts(name, count):
    assert models.build(name).count_params() == count


@pytest.mark.parametrize("depth, count", [(11, 132_863_336), (13, 133_047_848)])
def test_vgg_a_and_b_round_to_the_papers_133m(depth, count):
    # Built at 32×32 to save memory: fc1 then sees 1×1×512 maps instead of 7×7×512.
    at_224 = VGG((32, 32, 3), 1000, depth=depth).count_params() + (7 * 7 - 1) * 512 * 4096
    assert at_224 == count
    assert round(count / 1e6) == 133  # Simonyan & Zisserman 2015, Table 2


def test_vgg_batch_norm_adds_four_numbers_per_conv_channel():
    plain = VGG((32, 32, 3), 10, depth=11, fc_units=(64, 64))
    bn = VGG((32, 32, 3), 10, depth=11, fc_units=(64, 64), batch_norm=True)
    assert bn.name == "vgg11_bn"
    assert bn.count_params() - plain.count_params() == 4 * (64 + 128 + 2 * 256 + 4 * 512)


@pytest.mark.parametrize("depth, total, torchvision", [(18, 11_703_912, 11_689_512),
                                                       (34, 21_823_208, 21_797_672)])  # fmt: skip
def test_resnet_18_34_equal_torchvision_plus_conv_biases_and_bn_statistics(
    depth, total, torchvision
):
    # He et al. give no parameter counts for 18/34; torchvision's (no conv bias, BN moving
    # statistics not counted) plus one bias and two statistics per BN channel must match.
    model = ResNet((32, 32, 3), 1000, depth=depth)
    bn_channels = (model.count_params() - trainable(model)) // 2
    assert (model.count_params(), trainable(model) - bn_channels) == (total, torchvision)


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85),
                                             (110, 1.7)])  # fmt: skip
def test_cifar_resnet_parameters_match_table_6(depth, millions):
    # He et al. 2016, Table 6 (option A shortcuts, 10 classes).
    count = trainable(CifarResNet(depth=depth))
    assert round(count / 1e6, 2 if depth < 110 else 1) == millions


def test_cifar_resnet_shortcut_a_is_parameter_free_and_keeps_the_identity():
    a, b = CifarResNet(depth=20, shortcut="A"), CifarResNet(depth=20, shortcut="B")
    # B adds two 1×1 projections (16→32, 32→64), each with BN (4 numbers per channel).
    assert b.count_params() - a.count_params() == 16 * 32 + 4 * 32 + 32 * 64 + 4 * 64
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = keras.ops.convert_to_numpy(ZeroPadShortcut(7, 2)(x))
    np.testing.assert_array_equal(y[..., 2:5], x[:, ::2, ::2, :])
    assert y.shape == (2, 2, 2, 7) and not y[..., :2].any() and not y[..., 5:].any()


@pytest.mark.parametrize("depth, growth, millions", [(100, 12, 0.8)])
def test_densenet_bc_matches_table_2(depth, growth, millions):
    # Huang et al. 2017, Table 2: DenseNet-BC (L=100, k=12) 0.8M on CIFAR (10 classes).
    assert round(trainable(DenseNetBC(depth=depth, growth_rate=growth)) / 1e6, 1) == millions


@pytest.mark.slow
@pytest.mark.parametrize("depth, growth, millions", [(250, 24, 15.3), (190, 40, 25.6)])
def test_large_densenet_bc_matches_table_2(depth, growth, millions):
    assert round(trainable(DenseNetBC(depth=depth, growth_rate=growth)) / 1e6, 1) == millions


def test_googlenet_modules_follow_table_1():
    model = GoogLeNet()
    channels = 192
    for module, (b1, r3, b3, r5, b5, proj) in INCEPTION.items():
        convs = [(channels, b1, 1), (channels, r3, 1), (r3, b3, 3), (channels, r5, 1),
                 (r5, b5, 5), (channels, proj, 1)]  # fmt: skip
        want = sum(k * k * cin * cout + cout for cin, cout, k in convs)
        got = sum(
            lay.count_params() for lay in model.layers if lay.name.startswith(f"inception{module}_")
        )
        assert got == want, module
        channels = b1 + b3 + b5 + proj
    assert model.get_layer("inception5b_concat").output.shape[1:] == (7, 7, 1024)
    # Table 1's parameter column is rounded and sums to ≈6.8M; the exact total is 7.0M.
    assert model.count_params() == 6_998_552


def test_googlenet_aux_heads_train_with_their_loss_weights():
    model = GoogLeNet((32, 32, 3), 4, stem="small", aux_classifiers=True)
    assert sorted(model.output_names) == ["aux1_predictions", "aux2_predictions", "predictions"]
    model.compile(
        optimizer="sgd",
        loss={k: "sparse_categorical_crossentropy" for k in model.output_names},
        loss_weights={"predictions": 1.0, "aux1_predictions": 0.3, "aux2_predictions": 0.3},
    )
    x, y = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)), np.array([0, 1, 2, 3])
    history = model.fit(x, {k: y for k in model.output_names}, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    serving = keras.Model(model.input, model.get_layer("predictions").output)
    assert serving(x[:2]).shape == (2, 4)


@pytest.mark.parametrize("build, ok, too_small, message", [
    (lambda s, **k: AlexNet(s, 10, **k), 57, 56, "57×57; got .*stem='small'"),
    (lambda s, **k: AlexNet(s, 10, stem="small", **k), 15, 14, "15×15"),
    (lambda s, **k: DenseNet(s, 10, depth=121, **k), 29, 28, "29×29; got .*stem='small'"),
    (lambda s, **k: DenseNet(s, 10, depth=121, stem="small", **k), 8, 7, "8×8"),
    (lambda s, **k: GoogLeNet(s, 10, aux_classifiers=True, **k), 65, 64, "65×65"),
    (lambda s, **k: GoogLeNet(s, 10, aux_classifiers=True, stem="small", **k), 17, 16, "17×17"),
    (lambda s, **k: LeNet5(s, 10, pad_to=None, **k), 16, 15, "16×16; .*pad_to=32"),
    (lambda s, **k: LeNet5(s, 10, pad_to=None, variant="lecun1998", **k), 32, 31, "32×32"),
])  # fmt: skip
def test_minimum_input_sizes_are_exact_and_named(build, ok, too_small, message):
    model = build((ok, ok, 3), include_top=True)
    y = keras.tree.flatten(model(np.zeros((1, ok, ok, 3), "float32")))
    assert all(t.shape == (1, 10) for t in y)
    with pytest.raises(ValueError, match=message):
        build((too_small, too_small, 3))


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("build", [
    lambda s: VGG(s, 10, depth=11, fc_units=(32, 32)),
    lambda s: ResNet(s, 10, depth=18),
    lambda s: GoogLeNet(s, 10),
    lambda s: DenseNetBC(s, 10, depth=16, growth_rate=4),
])  # fmt: skip
def test_imagenet_layouts_accept_small_images_without_a_knob(build, shape):
    assert build(shape)(np.zeros((1, *shape), "float32")).shape == (1, 10)


def test_lenet5_1998_layers_have_the_papers_parameter_counts():
    # LeCun et al. 1998, §II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164; RBF 84·10.
    model = LeNet5((28, 28, 1), 10, variant="lecun1998", rbf_output=True)
    counts = {lay.name: lay.count_params() for lay in model.layers}
    assert {k: counts[k] for k in ("c1_conv", "s2_pool", "c3_conv", "s4_pool", "c5_conv", "f6",
                                   "predictions")} == {
        "c1_conv": 156, "s2_pool": 12, "c3_conv": 1516, "s4_pool": 32, "c5_conv": 48120,
        "f6": 10164, "predictions": 840,
    }  # fmt: skip
    assert model.count_params() == 60_840
    assert LeNet5((28, 28, 1), 10).count_params() == 61_706  # the modern variant, 28 → 32 px


def test_c3_reads_only_the_maps_of_its_connection_table():
    layer = ConnectionTableConv2D(C3_TABLE, 5)
    x = np.random.default_rng(0).normal(size=(1, 10, 10, 6)).astype("float32")
    base = keras.ops.convert_to_numpy(layer(x))
    for s2_map in range(6):
        bumped = x.copy()
        bumped[..., s2_map] += 1.0
        changed = np.abs(keras.ops.convert_to_numpy(layer(bumped)) - base).max(axis=(0, 1, 2))
        readers = {o for o, ins in enumerate(C3_TABLE) if s2_map in ins}
        assert {o for o in range(16) if changed[o] > 1e-6} == readers


def test_subsampling_is_a_2x2_sum_times_a_coefficient_plus_a_bias():
    layer = Subsampling2D()
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    layer.build(x.shape)
    layer.set_weights([np.array([0.5], "float32"), np.array([1.0], "float32")])
    want = (
        0.5 * np.array([[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]) + 1
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x))[0, ..., 0], want)


@pytest.mark.parametrize("build, message", [
    (lambda: ResNet(depth=42), "depth=42"),
    (lambda: CifarResNet(depth=21), "depth=21 must be 6n\\+2"),
    (lambda: CifarResNet(shortcut="C"), "shortcut='C'"),
    (lambda: VGG(depth=12), "depth=12"),
    (lambda: DenseNetBC(depth=99), "depth=99 must be 6n\\+4"),
    (lambda: DenseNet(stem="tiny"), "stem='tiny'"),
    (lambda: LeNet5(variant="lenet1"), "variant='lenet1'"),
    (lambda: LeNet5(variant="lecun1998", filters=(8, 16)), "filters=\\(8, 16\\)"),
    (lambda: LeNet5(rbf_output=True), "rbf_output=True"),
    (lambda: LeNet5(conv="dilated"), "conv='dilated'"),
    (lambda: LeNet5(dropout=1.0), "dropout=1.0"),
    (lambda: LeNet5(variant="lecun1998", batch_norm=True), "batch_norm=True"),
])  # fmt: skip
def test_bad_family_knobs_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_registry_overrides_reach_the_builder():
    model = models.build("lenet5", input_shape=(28, 28, 1), num_classes=3, filters=(8, 24))
    assert model.get_layer("c3_conv").filters == 24 and model.output.shape == (None, 3)
    assert models.build("resnet20", shortcut="B").get_layer("conv3_block1_0_conv")


@pytest.mark.parametrize("conv", ["conv", "tiled", "local"])
def test_lenet5_batch_norm_and_dropout_knobs(conv):
    plain = LeNet5((28, 28, 1), 10, conv=conv)
    model = LeNet5((28, 28, 1), 10, conv=conv, batch_norm=True, dropout=0.3)
    # BN after C1 (6 maps) and C3 (16 maps): γ, β and two moving statistics per map.
    assert model.count_params() - plain.count_params() == 4 * (6 + 16)
    assert model.get_layer("c3_act").output.shape == (None, 10, 10, 16)
    assert model.get_layer("fc2_dropout").rate == 0.3
