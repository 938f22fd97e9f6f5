"""Hand-designed and k-means-learned kernels (models.initializers, models.kmeans_patches)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from convflow.models import initializers
from convflow.models.kmeans_patches import KMeansPatches, kmeans_patch_kernels
from convflow.models.zoo import build


def np_kernel(init, shape):
    return keras.ops.convert_to_numpy(init(shape, dtype="float32"))


def test_edge_detector_is_the_two_element_kernel_of_fig_9_6():
    np.testing.assert_array_equal(
        np_kernel(initializers.EdgeDetector(), (1, 2, 1, 1))[..., 0, 0], [[-1, 1]]
    )
    # Centred in a 3×3 kernel the +1 is the centre tap and -1 its left neighbour.
    np.testing.assert_array_equal(
        np_kernel(initializers.EdgeDetector(), (3, 3, 1, 1))[..., 0, 0],
        [[0, 0, 0], [-1, 1, 0], [0, 0, 0]],
    )
    np.testing.assert_array_equal(
        np_kernel(initializers.EdgeDetector("horizontal"), (2, 1, 1, 1))[..., 0, 0], [[-1], [1]]
    )
    both = np_kernel(initializers.EdgeDetector("both"), (2, 2, 3, 4))
    np.testing.assert_allclose(both[..., 0, 0], [[-1 / 3, 1 / 3], [0, 0]], rtol=1e-6)
    np.testing.assert_allclose(both[..., 0, 1], [[-1 / 3, 0], [1 / 3, 0]], rtol=1e-6)
    np.testing.assert_array_equal(both[..., 2], both[..., 0])  # output channels cycle


def test_edge_kernel_in_a_conv_subtracts_the_left_neighbour_like_fig_9_6():
    image = np.random.default_rng(0).uniform(size=(1, 28, 32, 1)).astype("float32")
    conv = keras.layers.Conv2D(1, (1, 2), use_bias=False, kernel_initializer="zeros")
    conv.build(image.shape)
    conv.kernel.assign(initializers.get("edge")((1, 2, 1, 1), dtype="float32"))
    edges = keras.ops.convert_to_numpy(conv(image))
    assert edges.shape == (1, 28, 31, 1)  # 32 wide in, 31 out, as 320 -> 319 in the figure
    np.testing.assert_allclose(edges, image[:, :, 1:] - image[:, :, :-1], atol=1e-6)


def test_sobel_pair_alternates_over_outputs_and_centres_in_larger_kernels():
    gx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "float32")
    k = np_kernel(initializers.Sobel(), (3, 3, 1, 3))
    np.testing.assert_array_equal(k[..., 0, 0], gx)
    np.testing.assert_array_equal(k[..., 0, 1], gx.T)
    np.testing.assert_array_equal(k[..., 0, 2], gx)
    big = np_kernel(initializers.get("sobel"), (5, 5, 2, 2))
    np.testing.assert_array_equal(big[1:4, 1:4, 1, 0], gx / 2)
    assert np.all(big[0] == 0) and np.all(big[:, 4] == 0)


def test_sobel_rejects_kernels_smaller_than_3x3_and_non_2d_shapes():
    with pytest.raises(ValueError, match="3×3; kernel_size 2×2 is too small"):
        initializers.Sobel()((2, 2, 1, 1))
    with pytest.raises(ValueError, match=r"shape=\(3, 1, 4\)"):
        initializers.Sobel()((3, 1, 4))


def test_gabor_bank_is_zero_mean_unit_norm_and_orientation_selective():
    bank = initializers.Gabor(orientations=4, wavelengths=[4.0])
    k = np_kernel(bank, (9, 9, 1, 8))  # 4 orientations × 2 phases
    filters = k[:, :, 0, :].transpose(2, 0, 1)
    np.testing.assert_allclose(filters.sum(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(filters.reshape(8, -1), axis=1), 1, rtol=1e-5)
    assert len({f.tobytes() for f in filters}) == 8
    # θ = 0 varies along x, so it matches a vertical grating of its wavelength best.
    xs = np.arange(9) - 4.0
    grating = np.tile(np.cos(2 * math.pi * xs / 4.0), (9, 1))
    responses = np.abs((filters * grating).sum(axis=(1, 2)))
    assert responses.argmax() == 0
    assert responses[0] > 10 * responses[4]  # θ = π/2, same phase


def test_get_resolves_names_dicts_keras_names_and_instances():
    assert initializers.get(None) is None
    assert isinstance(initializers.get("gabor"), initializers.Gabor)
    g = initializers.get({"name": "gabor", "orientations": 3})
    assert isinstance(g, initializers.Gabor) and g.orientations == 3
    assert isinstance(initializers.get("he_normal"), keras.initializers.HeNormal)
    sobel = initializers.Sobel()
    assert initializers.get(sobel) is sobel
    with pytest.raises(ValueError, match="Unknown initializer name='sobol'"):
        initializers.get({"name": "sobol"})
    with pytest.raises(ValueError, match="Unknown initializer 'gabour'"):
        initializers.get("gabour")


def test_conv_identity_is_exact_identity_and_group_preserving_when_widening():
    k = np_kernel(initializers.ConvIdentity(), (3, 3, 4, 4))
    expected = np.zeros((3, 3, 4, 4), "float32")
    expected[1, 1] = np.eye(4)
    np.testing.assert_array_equal(k, expected)
    # Yu & Koltun eq. 5, C=2 -> 4 channels: each input feeds two outputs with weight C/c_out.
    wide = np_kernel(initializers.ConvIdentity(channels=2), (3, 3, 2, 4))
    np.testing.assert_array_equal(wide[1, 1], [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    noisy = np_kernel(initializers.ConvIdentity(noise_stddev=0.01, seed=1), (3, 3, 2, 2))
    assert np.all(noisy[0] != 0) and np.all(np.abs(noisy[0]) < 0.1)


def test_bilinear_kernel_upsamples_a_ramp_linearly():
    kernel = np_kernel(initializers.Bilinear(), (4, 4, 1, 1))
    np.testing.assert_allclose(kernel[:, 0, 0, 0] / kernel[:, 0, 0, 0].max(), [1 / 3, 1, 1, 1 / 3])
    up = keras.layers.Conv2DTranspose(
        1, 4, strides=2, padding="same", use_bias=False, kernel_initializer=initializers.Bilinear()
    )
    ramp = np.tile(np.arange(8, dtype="float32"), (8, 1))[None, :, :, None]
    out = keras.ops.convert_to_numpy(up(ramp))[0, 4, 2:-2, 0]
    np.testing.assert_allclose(np.diff(out), 0.5, atol=1e-5)  # interior steps halve


def _stripes(n=60, seed=0):
    """Images of random vertical or horizontal step edges (0–255)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 16, 16, 1))
    for img, pos, vertical in zip(
        images, rng.integers(3, 13, n), rng.integers(0, 2, n), strict=True
    ):
        if vertical:
            img[:, pos:] = 255
        else:
            img[pos:, :] = 255
    return images + rng.normal(0, 5, images.shape)


def test_kmeans_kernels_have_the_layer_shape_and_are_whitened_unit_centroids():
    images = _stripes()
    kernel, info = kmeans_patch_kernels(images, (5, 5, 1, 6), num_patches=2000, seed=3)
    assert kernel.shape == (5, 5, 1, 6)
    centroids, whitening = info["centroids"], info["whitening"]
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-9)
    # fold_whitening: each kernel is W · centroid, so conv(x) = centroid · W x.
    np.testing.assert_allclose(kernel[..., 0].ravel(), whitening @ centroids[0], rtol=1e-9)
    unfolded, _ = kmeans_patch_kernels(
        images, (5, 5, 1, 6), num_patches=2000, seed=3, fold_whitening=False
    )
    np.testing.assert_allclose(unfolded[..., 2].ravel(), centroids[2], rtol=1e-9)
    np.testing.assert_allclose(whitening, whitening.T, atol=1e-12)  # ZCA: symmetric


def test_zca_whitening_flattens_the_patch_covariance():
    patches = np.random.default_rng(0).normal(size=(5000, 3)) @ np.array(
        [[3.0, 0, 0], [1.0, 1.0, 0], [0, 0.5, 0.2]]
    )
    from convflow.models.kmeans_patches import zca_whitening

    mean, w = zca_whitening(patches, epsilon=0.0)
    white = (patches - mean) @ w
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(3), atol=1e-6)


def test_kmeans_is_deterministic_with_a_seed_and_changes_with_it():
    images = _stripes()
    a, _ = kmeans_patch_kernels(images, (3, 3, 1, 4), num_patches=1000, seed=7)
    b, _ = kmeans_patch_kernels(images, (3, 3, 1, 4), num_patches=1000, seed=7)
    c, _ = kmeans_patch_kernels(images, (3, 3, 1, 4), num_patches=1000, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_kmeans_initializer_in_a_first_layer_and_its_config_carries_the_kernel(tmp_path):
    images = _stripes()
    spec = {"name": "kmeans", "patches_from": images, "num_patches": 1000, "seed": 2}
    conv = keras.layers.Conv2D(4, 3, kernel_initializer=initializers.get(spec))
    conv.build((None, 16, 16, 1))
    expected, _ = kmeans_patch_kernels(images, (3, 3, 1, 4), num_patches=1000, seed=2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv.kernel), expected, rtol=1e-6)
    config = conv.kernel_initializer.get_config()
    assert config["patches_from"] is None  # arrays are not put into configs
    again = KMeansPatches.from_config(config)((3, 3, 1, 4), dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again), expected, rtol=1e-6)
    np.save(tmp_path / "patches.npy", images)
    by_path = initializers.get({**spec, "patches_from": str(tmp_path / "patches.npy")})
    np.testing.assert_allclose(np_kernel(by_path, (3, 3, 1, 4)), expected, rtol=1e-6)


def test_kmeans_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs patches_from"):
        KMeansPatches()((3, 3, 1, 4))
    with pytest.raises(ValueError, match="patches_from has 1 channels but the layer's input has 3"):
        KMeansPatches(patches_from=_stripes(5))((3, 3, 3, 4))


def test_builders_take_a_stem_initializer_for_their_first_convolution():
    model = build("unet", input_shape=(16, 16, 1), num_classes=2, base_filters=2, depth=1,
                  stem_initializer="sobel")  # fmt: skip
    kernel = keras.ops.convert_to_numpy(model.get_layer("down1_1_conv").kernel)
    np.testing.assert_array_equal(kernel, np_kernel(initializers.Sobel(), (3, 3, 1, 2)))
    segnet = build("segnet", input_shape=(32, 32, 3), num_classes=2, width_multiplier=0.0625,
                   stem_initializer={"name": "edge", "orientation": "both"})  # fmt: skip
    kernel = keras.ops.convert_to_numpy(segnet.get_layer("encoder1_1_conv").kernel)
    np.testing.assert_array_equal(
        kernel, np_kernel(initializers.EdgeDetector("both"), (3, 3, 3, 4))
    )


@pytest.mark.parametrize(
    "spec", [{"name": "gabor", "orientations": 2}, {"name": "kmeans", "num_patches": 500}]
)
def test_a_model_with_a_custom_stem_initializer_saves_and_loads(spec, tmp_path):
    if spec["name"] == "kmeans":
        spec = {**spec, "patches_from": _stripes(20)}
    model = build("unet", input_shape=(16, 16, 1), num_classes=2, base_filters=2, depth=1,
                  stem_initializer=spec)  # fmt: skip
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    init = loaded.get_layer("down1_1_conv").kernel_initializer
    assert type(init) is type(initializers.get(spec))
    fresh = keras.ops.convert_to_numpy(init((3, 3, 1, 2), dtype="float32"))
    np.testing.assert_allclose(
        fresh, keras.ops.convert_to_numpy(model.get_layer("down1_1_conv").kernel), rtol=1e-6
    )
