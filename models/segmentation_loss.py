"""Per-pixel cross-entropy for semantic segmentation, skipping the ignore index.

``MaskedSparseCrossEntropy`` is sparse categorical cross-entropy over the class axis of
``(B, H, W, K)`` scores, with three things the plain Keras loss lacks:

- pixels whose label is ``ignore_index`` (255, Pascal VOC's "void") add nothing, and the
  mean is taken over the counted pixels only, so the loss does not shrink as the ignored
  share grows;
- optional per-class weights, e.g. median-frequency balancing (Eigen & Fergus 2015, used by
  SegNet: ``w_c = median_freq / freq_c``);
- optional per-pixel weights passed as Keras ``sample_weight`` of shape ``(B, H, W)``, e.g.
  U-Net's boundary weight map (Ronneberger et al. 2015, eq. 2).

Loss = ``Σ_p w_p · w_class(y_p) · CE_p / #{p : y_p ≠ ignore}`` over the batch.
"""

from __future__ import annotations

import keras
from keras import ops

IGNORE_INDEX = 255


@keras.saving.register_keras_serializable(package="convflow")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Sparse per-pixel cross-entropy that skips ``ignore_index`` pixels.

    Args:
        ignore_index: label value not counted (None: count every pixel).
        class_weights: K per-class weights, or None for all 1.
        from_logits: ``y_pred`` are logits (True) or probabilities.
        name: loss name.
        dtype: computation dtype.

    Call shapes: ``y_true (B, H, W)`` or ``(B, H, W, 1)`` integer labels, ``y_pred
    (B, H, W, K)``; ``sample_weight (B, H, W)`` optional.
    """

    def __init__(
        self, ignore_index=IGNORE_INDEX, class_weights=None, from_logits=True,
        name="masked_sparse_cross_entropy", dtype=None,
    ):  # fmt: skip
        # "sum": call() already divides by the number of counted pixels of the batch.
        super().__init__(name=name, reduction="sum", dtype=dtype)
        self.ignore_index = ignore_index
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(ops.convert_to_tensor(y_true), "int32")
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        valid = ops.ones_like(y_true, dtype="bool")
        if self.ignore_index is not None:
            valid = ops.not_equal(y_true, self.ignore_index)
        labels = ops.where(valid, y_true, ops.zeros_like(y_true))  # any valid index; masked out
        ce = keras.losses.sparse_categorical_crossentropy(
            labels, ops.cast(y_pred, "float32"), from_logits=self.from_logits
        )  # (B, H, W)
        weight = ops.cast(valid, "float32")
        if self.class_weights is not None:
            table = ops.convert_to_tensor(self.class_weights, "float32")
            weight = weight * ops.take(table, labels)
        count = ops.maximum(ops.sum(ops.cast(valid, "float32")), 1.0)
        return ce * weight / count

    def get_config(self):
        return {
            **super().get_config(),
            "ignore_index": self.ignore_index,
            "class_weights": self.class_weights,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = {k: v for k, v in config.items() if k != "reduction"}
        return cls(**config)
