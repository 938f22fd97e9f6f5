"""MaxPoolingWithArgmax2D / MaxUnpooling2D against a numpy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convflow.models.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D


def reference_pool(x, ph, pw):
    """Loop reference: max and row-major first argmax of every (ph, pw) window."""
    b, h, w, c = x.shape
    ho, wo = h // ph, w // pw
    values = np.zeros((b, ho, wo, c), x.dtype)
    switches = np.zeros((b, ho, wo, c), "int32")
    for n, i, j, k in np.ndindex(b, ho, wo, c):
        window = x[n, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw, k].ravel()
        values[n, i, j, k], switches[n, i, j, k] = window.max(), window.argmax()
    return values, switches


def reference_unpool(values, switches, ph, pw):
    b, ho, wo, c = values.shape
    out = np.zeros((b, ho * ph, wo * pw, c), values.dtype)
    for n, i, j, k in np.ndindex(values.shape):
        dy, dx = divmod(int(switches[n, i, j, k]), pw)
        out[n, i * ph + dy, j * pw + dx, k] = values[n, i, j, k]
    return out


@pytest.mark.parametrize(
    "shape, pool", [((2, 6, 8, 3), 2), ((1, 7, 9, 2), 2), ((2, 6, 9, 1), (2, 3))]
)
def test_pooled_values_equal_max_pooling_and_switches_equal_argmax(shape, pool):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    pooled, switches = MaxPoolingWithArgmax2D(pool)(x)
    ph, pw = (pool, pool) if isinstance(pool, int) else pool
    ref_values, ref_switches = reference_pool(x, ph, pw)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(pooled), ref_values)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(pooled),
        keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(pool)(x)),
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(switches), ref_switches)
    assert keras.ops.convert_to_numpy(switches).dtype == np.int32


def test_unpooling_puts_each_value_back_at_its_argmax_and_zeros_elsewhere():
    x = np.array(
        [[1, 5, 0, 2],
         [3, 2, 8, 1],
         [0, 0, 4, 4],
         [9, 1, 4, 7]], "float32",
    )[None, :, :, None]  # fmt: skip
    pooled, switches = MaxPoolingWithArgmax2D(2)(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(pooled)[0, :, :, 0], [[5, 8], [9, 7]])
    # In-window positions are row-major (0 1 / 2 3): 5 sits at 1, 8 and 9 at 2, 7 at 3.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(switches)[0, :, :, 0], [[1, 2], [2, 3]]
    )
    restored = keras.ops.convert_to_numpy(MaxUnpooling2D(2)([pooled, switches]))[0, :, :, 0]
    np.testing.assert_array_equal(
        restored,
        [[0, 5, 0, 0],
         [0, 0, 8, 0],
         [0, 0, 0, 0],
         [9, 0, 0, 7]],
    )  # fmt: skip


def test_ties_take_the_first_position_like_tf_max_pool_with_argmax():
    x = np.full((1, 2, 2, 1), 3.0, "float32")
    _, switches = MaxPoolingWithArgmax2D(2)(x)
    assert int(keras.ops.convert_to_numpy(switches).item()) == 0


@pytest.mark.parametrize("pool", [2, (2, 3)])
def test_unpooling_matches_numpy_scatter_for_arbitrary_values(pool):
    rng = np.random.default_rng(1)
    ph, pw = (pool, pool) if isinstance(pool, int) else pool
    values = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    switches = rng.integers(0, ph * pw, size=values.shape).astype("int32")
    out = keras.ops.convert_to_numpy(MaxUnpooling2D(pool)([values, switches]))
    np.testing.assert_array_equal(out, reference_unpool(values, switches, ph, pw))


def test_layers_work_on_unknown_spatial_sizes_and_round_trip_through_a_keras_file(tmp_path):
    inputs = keras.Input((None, None, 3))
    pooled, switches = MaxPoolingWithArgmax2D(2, name="pool")(inputs)
    outputs = MaxUnpooling2D(2, name="unpool")([pooled * 2.0, switches])
    model = keras.Model(inputs, outputs)
    assert model.get_layer("pool").output[1].dtype == "int32"
    x = np.random.default_rng(2).normal(size=(2, 6, 10, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    values, switches_ref = reference_pool(x, 2, 2)
    np.testing.assert_allclose(y, reference_unpool(values * 2.0, switches_ref, 2, 2))
    model.save(tmp_path / "unpool.keras")
    loaded = keras.saving.load_model(tmp_path / "unpool.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), y)
    assert loaded.get_layer("unpool").get_config()["pool_size"] == (2, 2)


def grad_of_sum(fn, x):
    """d sum(fn(x)) / dx on whichever backend Keras runs."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return tape.gradient(total, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: fn(v).sum())(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.cpu().numpy()


def test_gradient_flows_only_to_the_argmax_positions():
    x = np.random.default_rng(3).normal(size=(1, 4, 4, 2)).astype("float32")
    pool, unpool = MaxPoolingWithArgmax2D(2), MaxUnpooling2D(2)
    grad = grad_of_sum(lambda v: unpool(list(pool(v))), x)
    values, switches = reference_pool(x, 2, 2)
    np.testing.assert_array_equal(grad, reference_unpool(np.ones_like(values), switches, 2, 2))


def test_bad_pool_size_is_named():
    with pytest.raises(ValueError, match=r"pool_size=0"):
        MaxPoolingWithArgmax2D(0)
