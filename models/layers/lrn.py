"""Local response normalization across channels (Krizhevsky et al. 2012, §3.3).

Keras has no LRN layer; AlexNet and GoogLeNet use it, so it is rebuilt from keras.ops.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="convflow")
class LocalResponseNormalization(keras.layers.Layer):
    """``b_c = a_c / (k + alpha · sum_{|c'-c| ≤ n//2} a_{c'}²) ** beta`` over channels.

    Defaults are the paper's ``k=2, n=5, alpha=1e-4, beta=0.75``; ``alpha`` multiplies the sum
    (not the mean), as in the paper and ``tf.nn.local_response_normalization``.

    Args:
        size: n, the number of adjacent channels summed (odd).
        alpha, beta, k: the paper's hyper-parameters.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"size={size!r} must be a positive odd int (a centred window)")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def call(self, inputs):
        radius, channels = self.size // 2, inputs.shape[-1]
        squares = ops.pad(ops.square(inputs), [(0, 0)] * (inputs.ndim - 1) + [(radius, radius)])
        window = sum(squares[..., i : i + channels] for i in range(self.size))
        return inputs / ops.power(self.k + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
        }
