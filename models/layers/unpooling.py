"""Max pooling that remembers its switches, and the unpooling that uses them.

Zeiler & Fergus (2014) record, for every pooling region, *where* the maximum was (the
"switch"); DeconvNet (Noh et al. 2015) and SegNet (Badrinarayanan et al. 2015) put each
decoder activation back at that position and leave zeros elsewhere. TensorFlow has
``tf.nn.max_pool_with_argmax`` but JAX and PyTorch have no common equivalent, so both layers
are written with ``keras.ops`` only.

A switch here is the position *inside its window*, ``dy * pool_w + dx`` (row-major, the first
maximum wins on ties, as in ``tf.nn.max_pool_with_argmax``), stored as int32 with the same
shape as the pooled values. Window-local switches need no batch or channel arithmetic, which
keeps unpooling a broadcast compare instead of a scatter.

Pooling windows do not overlap (``strides == pool_size``), which is what both papers use. Like
``MaxPooling2D(padding="valid")`` a trailing row/column that does not fill a window is dropped,
so unpooling an odd-sized map gives the even size below it; the segmentation builders require
inputs divisible by ``2**depth`` for this reason.
"""

from __future__ import annotations

import keras
from keras import ops


def _pair(value, what):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{what}={value!r} must be a positive int or a pair of them")
    return pair


@keras.saving.register_keras_serializable(package="convflow")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2-D max pooling that also returns the switch (argmax) of every window.

    Args:
        pool_size: int or (ph, pw); the windows do not overlap.

    Call returns:
        ``(pooled, switches)``: pooled values (B, H//ph, W//pw, C) equal to
        ``MaxPooling2D(pool_size)``, and int32 switches of the same shape.
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")

    def call(self, inputs):
        ph, pw = self.pool_size
        shape = ops.shape(inputs)
        rows, cols = (shape[1] // ph) * ph, (shape[2] // pw) * pw
        x = inputs[:, :rows, :cols, :]
        # One strided view per window position -> (B, H/ph, W/pw, C, ph*pw); the window is
        # then an ordinary last axis for max/argmax, with no reshape of (possibly dynamic)
        # spatial sizes.
        taps = [x[:, dy::ph, dx::pw, :] for dy in range(ph) for dx in range(pw)]
        windows = ops.stack(taps, axis=-1)
        pooled = ops.max(windows, axis=-1)
        switches = ops.cast(ops.argmax(windows, axis=-1), "int32")
        return pooled, switches

    def compute_output_spec(self, inputs):
        # Overridden because the two outputs have different dtypes.
        b, h, w, c = inputs.shape
        ph, pw = self.pool_size
        shape = (b, None if h is None else h // ph, None if w is None else w // pw, c)
        return (
            keras.KerasTensor(shape, dtype=self.compute_dtype),
            keras.KerasTensor(shape, dtype="int32"),
        )

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="convflow")
class MaxUnpooling2D(keras.layers.Layer):
    """Puts each value back at its switch position inside a (ph, pw) window; zeros elsewhere.

    Args:
        pool_size: int or (ph, pw), the same as the pooling layer that made the switches.

    Call args:
        inputs: ``[values, switches]``, both (B, h, w, C); switches from
            :class:`MaxPoolingWithArgmax2D`.

    Returns:
        (B, h*ph, w*pw, C).
    """

    def __init__(self, pool_size=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")

    def call(self, inputs):
        values, switches = inputs
        ph, pw = self.pool_size
        # Nearest-neighbour upsampling copies every value (and its switch) over its window;
        # a position keeps the value only where its own in-window index equals the switch.
        up_values = ops.repeat(ops.repeat(values, ph, axis=1), pw, axis=2)
        up_switches = ops.repeat(ops.repeat(switches, ph, axis=1), pw, axis=2)
        shape = ops.shape(up_values)
        row_pos = ops.mod(ops.arange(shape[1], dtype="int32"), ph) * pw
        col_pos = ops.mod(ops.arange(shape[2], dtype="int32"), pw)
        position = ops.reshape(row_pos, (1, -1, 1, 1)) + ops.reshape(col_pos, (1, 1, -1, 1))
        keep = ops.equal(ops.cast(up_switches, "int32"), position)
        return ops.where(keep, up_values, ops.zeros_like(up_values))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape[0]
        ph, pw = self.pool_size
        return (b, None if h is None else h * ph, None if w is None else w * pw, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}
