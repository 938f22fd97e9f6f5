"""models/layers/contrast.py against plain numpy references written from the formulas.

The references are deliberately naive (float64, explicit loops over windows) so that they
read like the book: GCN is Goodfellow et al. (2016) eq. 12.3; LCN is Jarrett et al. (2009)
with the border rule documented in ``local_contrast_normalize``.
"""

import keras
import numpy as np
import pytest
from convflow.models.layers import contrast

TOL = 1e-5


def ref_gcn(x, s=1.0, lam=0.0, eps=1e-8):
    """Eq. 12.3 per image, over all pixels and channels."""
    out = np.empty(x.shape, np.float64)
    for i, image in enumerate(np.asarray(x, np.float64)):
        mean = image.mean()
        contrast_ = np.sqrt(lam + np.mean((image - mean) ** 2))
        out[i] = s * (image - mean) / max(eps, contrast_)
    return out


def ref_lcn(x, kernel_size=9, sigma=2.0, floor=1e-4):
    """Subtractive then divisive normalization, window renormalized to in-image pixels."""
    r = kernel_size // 2
    offsets = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    window = np.outer(g, g)
    n, h, w, c = x.shape

    def local_mean(plane):
        out = np.empty((h, w))
        for i in range(h):
            for j in range(w):
                rows = slice(max(0, i - r), min(h, i + r + 1))
                cols = slice(max(0, j - r), min(w, j + r + 1))
                wgt = window[
                    rows.start - i + r : rows.stop - i + r, cols.start - j + r : cols.stop - j + r
                ]
                out[i, j] = (wgt * plane[rows, cols]).sum() / wgt.sum()
        return out

    out = np.empty(x.shape, np.float64)
    for k in range(n):
        for ch in range(c):
            plane = np.asarray(x[k, :, :, ch], np.float64)
            v = plane - local_mean(plane)
            sd = np.sqrt(local_mean(v**2))
            out[k, :, :, ch] = v / np.maximum(np.maximum(sd, sd.mean()), floor)
    return out


def ref_crop(x):
    """The centred square; the odd leftover row/column goes to the bottom/right."""
    h, w = x.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[:, top : top + side, left : left + side]


def ref_bilinear(x, size):
    """Bilinear resize sampling at pixel centres, clamped at the edges (no antialias)."""
    n, h, w, c = x.shape
    out = np.empty((n, size, size, c))
    for i in range(size):
        for j in range(size):
            y = min(max((i + 0.5) * h / size - 0.5, 0), h - 1)
            xx = min(max((j + 0.5) * w / size - 0.5, 0), w - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(xx))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, xx - x0
            top = x[:, y0, x0] * (1 - fx) + x[:, y0, x1] * fx
            bottom = x[:, y1, x0] * (1 - fx) + x[:, y1, x1] * fx
            out[:, i, j] = top * (1 - fy) + bottom * fy
    return out


def np_(t):
    return keras.ops.convert_to_numpy(t)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_scale_maps_uint8_to_unit_interval():
    x = np.array([0, 1, 128, 255], np.uint8).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(np_(contrast.scale_to_unit(x)).ravel(), [0, 1 / 255, 128 / 255, 1])


@pytest.mark.parametrize("channels", [1, 3])
def test_gcn_matches_reference(rng, channels):
    x = rng.random((4, 9, 7, channels)).astype("float32")
    np.testing.assert_allclose(np_(contrast.global_contrast_normalize(x)), ref_gcn(x), atol=TOL)


def test_gcn_with_lambda_and_scale(rng):
    x = rng.random((3, 8, 8, 3)).astype("float32") * 0.1
    got = np_(contrast.global_contrast_normalize(x, scale=55.0, lam=10.0, eps=1e-8))
    np.testing.assert_allclose(got, ref_gcn(x, 55.0, 10.0, 1e-8), rtol=1e-5, atol=TOL)
    # λ = 10 dwarfs these variances (< 0.01), so the contrast becomes ≈ s/sqrt(10) smaller.
    plain = np_(contrast.global_contrast_normalize(x, scale=55.0))
    assert np.abs(got).max() < np.abs(plain).max() / 10


def test_gcn_eps_dominates_low_contrast(rng):
    x = 0.5 + 1e-3 * rng.standard_normal((2, 6, 6, 1)).astype("float32")
    got = np_(contrast.global_contrast_normalize(x, eps=1.0))
    # contrast ~1e-3 < eps = 1: the image is only centred, not stretched.
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(got, centred, atol=1e-6)
    np.testing.assert_allclose(got, ref_gcn(x, eps=1.0), atol=1e-6)


@pytest.mark.parametrize("value", [0.0, 0.3, 77 / 255, 1.0])
def test_gcn_constant_image_gives_zeros(value):
    x = np.full((2, 28, 28, 3), value, np.float32)
    got = np_(contrast.global_contrast_normalize(x))
    assert np.isfinite(got).all()
    assert np.array_equal(got, np.zeros_like(got))


def test_gcn_normalizes_jointly_over_channels(rng):
    x = rng.random((1, 5, 5, 3)).astype("float32")
    x[..., 2] *= 4  # a brighter blue channel must stay brighter: one mean/contrast per image
    got = np_(contrast.global_contrast_normalize(x))
    assert abs(got.mean()) < 1e-6 and abs(np.sqrt((got**2).mean()) - 1) < 1e-5
    assert got[..., 2].std() > 2 * got[..., 0].std()


@pytest.mark.parametrize(
    ("shape", "kernel", "sigma"), [((2, 11, 8, 1), 5, 1.5), ((1, 12, 13, 3), 9, 2.0)]
)
def test_lcn_matches_reference(rng, shape, kernel, sigma):
    x = rng.random(shape).astype("float32")
    got = np_(contrast.local_contrast_normalize(x, kernel, sigma))
    np.testing.assert_allclose(got, ref_lcn(x, kernel, sigma), atol=TOL, rtol=1e-5)


def test_lcn_does_not_darken_edges():
    # A flat image stays flat, corners included; zero padding would pull the local mean
    # down near the border and leave a bright frame after subtraction.
    x = np.full((1, 16, 16, 1), 0.6, np.float32)
    x[0, 7:9, 7:9, 0] = 0.9
    got = np_(contrast.local_contrast_normalize(x))
    np.testing.assert_allclose(got, ref_lcn(x), atol=TOL)
    assert np.abs(got[0, [0, 0, -1, -1], [0, -1, 0, -1], 0]).max() < 0.05


def test_lcn_handles_channels_separately(rng):
    x = rng.random((1, 10, 10, 2)).astype("float32")
    y = x.copy()
    y[..., 1] = rng.random((10, 10)) * 5
    a, b = np_(contrast.local_contrast_normalize(x)), np_(contrast.local_contrast_normalize(y))
    np.testing.assert_allclose(a[..., 0], b[..., 0], atol=1e-6)
    assert not np.allclose(a[..., 1], b[..., 1])


def test_lcn_constant_image_is_finite_and_near_zero():
    got = np_(contrast.local_contrast_normalize(np.full((1, 9, 9, 1), 0.4, np.float32)))
    assert np.isfinite(got).all() and np.abs(got).max() < 1e-2


@pytest.mark.parametrize(
    ("h", "w", "rows", "cols"),
    [(5, 8, (0, 5), (1, 6)), (9, 4, (2, 6), (0, 4)), (6, 6, (0, 6), (0, 6))],
)
def test_center_crop_non_square(rng, h, w, rows, cols):
    x = rng.random((2, h, w, 3)).astype("float32")
    got = np_(contrast.center_square_crop(x))
    np.testing.assert_array_equal(got, x[:, rows[0] : rows[1], cols[0] : cols[1]])
    np.testing.assert_array_equal(got, ref_crop(x))


@pytest.mark.parametrize(("side", "size"), [(5, 9), (12, 7), (28, 28)])
def test_bilinear_resize_matches_reference(rng, side, size):
    x = rng.random((2, side, side, 3)).astype("float32")
    got = np_(contrast.resize(x, size, "bilinear", antialias=False))
    np.testing.assert_allclose(got, ref_bilinear(x, size), atol=TOL)


def test_antialias_smooths_only_when_shrinking(rng):
    x = rng.random((1, 40, 40, 1)).astype("float32")
    sharp = np_(contrast.resize(x, 10, antialias=False))
    smooth = np_(contrast.resize(x, 10, antialias=True))
    assert smooth.std() < sharp.std()
    up = rng.random((1, 6, 6, 1)).astype("float32")
    np.testing.assert_allclose(
        np_(contrast.resize(up, 11, antialias=True)),
        np_(contrast.resize(up, 11, antialias=False)),
        atol=TOL,
    )


def test_standardize_per_channel():
    x = np.ones((1, 2, 2, 2), np.float32) * np.array([3.0, -1.0], np.float32)
    got = np_(contrast.standardize(x, [1.0, -1.0], [2.0, 0.5]))
    np.testing.assert_allclose(got[0, 0, 0], [1.0, 0.0])


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="kernel_size=4"):
        contrast.LocalContrastNormalization(kernel_size=4)
    with pytest.raises(ValueError, match="sigma=0"):
        contrast.gaussian_kernel_1d(5, 0)
    with pytest.raises(ValueError, match="interpolation='cubic'"):
        contrast.SquareResize(28, interpolation="cubic")
    with pytest.raises(ValueError, match="std"):
        contrast.ChannelStandardization([0.0], [0.0])


def test_layers_take_any_size_and_round_trip(rng, tmp_path):
    inputs = keras.Input((None, None, 3), dtype="uint8")
    x = contrast.UnitScale()(inputs)
    x = contrast.CenterSquareCrop()(x)
    x = contrast.SquareResize(12, "bilinear", antialias=False)(x)
    x = contrast.GlobalContrastNormalization(scale=2.0, lam=0.1)(x)
    x = contrast.LocalContrastNormalization(kernel_size=5, sigma=1.0)(x)
    x = contrast.ChannelStandardization([0.1, 0.0, -0.1], [1.0, 2.0, 3.0])(x)
    model = keras.Model(inputs, x)
    assert model.output.shape == (None, 12, 12, 3)
    path = tmp_path / "pre.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for h, w in [(20, 15), (9, 30)]:
        images = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        a = np_(model(images))
        expected = ref_gcn(ref_bilinear(ref_crop(images / 255.0), 12), 2.0, 0.1)
        expected = (ref_lcn(expected, 5, 1.0) - [0.1, 0.0, -0.1]) / [1.0, 2.0, 3.0]
        assert a.shape == (2, 12, 12, 3)
        np.testing.assert_allclose(a, expected, atol=1e-4)
        np.testing.assert_allclose(np_(loaded(images)), a, atol=1e-6)
    assert loaded.layers[-3].get_config()["lam"] == pytest.approx(0.1)


def test_layers_stay_float32_under_mixed_precision(rng):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = contrast.GlobalContrastNormalization()
        x = rng.random((2, 6, 6, 1)).astype("float32")
        got = layer(x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(np_(got), ref_gcn(x), atol=TOL)


def test_params_know_the_same_interpolations():
    from convflow.components.transforms import INTERPOLATIONS

    assert INTERPOLATIONS == contrast.INTERPOLATIONS
