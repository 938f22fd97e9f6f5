"""The served detector's post-processing, inside the exported graph.

YOLO v1 output (the paper's class-specific confidences) or keras-cv YOLOv8's -> boxes of
every class scored, per-class non-max suppression (``tf.image.combined_non_max_suppression``),
then back to the caller's pixels: the boxes are found on the preprocessed square (crop, then
resize), so the crop is undone with the input's own height and width, whatever its size.

One float32 output ``(N, max_detections, 6)``, one row per detection, best first::

    [x1, y1, x2, y2, score, class]    x, y in pixels of that input image; padding rows have
                                      score 0 and class -1

One tensor rather than a dict, because MLflow's pyfunc for exported Keras models converts
the serving endpoint's result with one ``convert_to_numpy``. TensorFlow is used directly: the
served model is a TF SavedModel export.
"""

from __future__ import annotations

import keras
import tensorflow as tf

COLUMNS = ("x1", "y1", "x2", "y2", "score", "class")
LAYER = "detections"
#: threshold name -> (lowest, highest) accepted value
THRESHOLDS = {"score_threshold": (0.0, 1.0), "iou_threshold": (0.0, 1.0)}


class Detections(keras.layers.Layer):
    """(raw images, a detector's output) -> ``(N, max_detections, 6)`` rows in input pixels:
    the subclass decodes boxes and class scores, this class runs per-class NMS and undoes the
    preprocessing's crop.

    Args:
        score_threshold: smallest class score kept.
        iou_threshold: NMS suppresses same-class boxes overlapping more than this.
        max_detections: rows per image (padded).
        crop: the preprocessing cropped the centred square before resizing.
    """

    def __init__(self, score_threshold=0.2, iou_threshold=0.5, max_detections=100, crop=True,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.crop = bool(crop)
        # Variables, not constants: the exported graph reads them at each call, so a consumer
        # can assign new thresholds to the loaded SavedModel (set_thresholds).
        self.score_var = self._threshold("score_threshold", self.score_threshold)
        self.iou_var = self._threshold("iou_threshold", self.iou_threshold)

    def _threshold(self, name, value):
        return self.add_weight(
            shape=(), dtype="float32", trainable=False, name=name,
            initializer=keras.initializers.Constant(value),
        )  # fmt: skip

    def _decode(self, y_pred):
        """Normalized [y1, x1, y2, x2] boxes (N, K, 4) and class scores (N, K, C)."""
        raise NotImplementedError

    def _window(self, images):
        """(top, left, height, width) of the input region the network saw, float32."""
        shape = tf.shape(images)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        if not self.crop:
            return 0.0, 0.0, height, width
        side = tf.minimum(height, width)
        # As contrast.center_square_crop: integer offsets, the odd pixel dropped at the end.
        return tf.floor((height - side) / 2), tf.floor((width - side) / 2), side, side

    def call(self, images, y_pred):
        boxes, scores = self._decode(y_pred)
        nms = tf.image.combined_non_max_suppression(
            boxes[:, :, None, :], scores,
            max_output_size_per_class=self.max_detections, max_total_size=self.max_detections,
            iou_threshold=tf.convert_to_tensor(self.iou_var),
            score_threshold=tf.convert_to_tensor(self.score_var),
            pad_per_class=False, clip_boxes=True,
        )  # fmt: skip
        top, left, height, width = self._window(images)
        y1, x1, y2, x2 = tf.unstack(nms.nmsed_boxes, axis=-1)
        valid = tf.sequence_mask(nms.valid_detections, self.max_detections)
        classes = tf.where(valid, nms.nmsed_classes, -1.0)
        pixels = tf.stack(
            [left + x1 * width, top + y1 * height, left + x2 * width, top + y2 * height], -1
        )
        pixels = pixels * tf.cast(valid, tf.float32)[..., None]
        return tf.concat([pixels, nms.nmsed_scores[..., None], classes[..., None]], -1)

    def compute_output_shape(self, images_shape, y_pred_shape):
        return (images_shape[0], self.max_detections, len(COLUMNS))

    def get_config(self):
        return {
            **super().get_config(),
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "crop": self.crop,
        }


@keras.saving.register_keras_serializable(package="convflow")
class YoloV1Detections(Detections):
    """YOLO v1 output ``(N, S, S, B·5 + C)`` with class logits -> detections in input pixels.

    Args:
        boxes_per_cell: B of the network.
        **kwargs: :class:`Detections`' thresholds, ``max_detections``, ``crop``.
    """

    def __init__(self, boxes_per_cell=2, score_threshold=0.2, iou_threshold=0.5,
                 max_detections=100, crop=True, **kwargs):  # fmt: skip
        super().__init__(score_threshold, iou_threshold, max_detections, crop, **kwargs)
        self.boxes_per_cell = int(boxes_per_cell)

    def _decode(self, y_pred):
        """Normalized [y1, x1, y2, x2] boxes (N, S·S·B, 4) and class scores (N, S·S·B, C)."""
        y_pred = tf.cast(y_pred, tf.float32)
        B = self.boxes_per_cell
        S = tf.shape(y_pred)[1]
        pred = tf.reshape(y_pred[..., : 5 * B], [-1, S, S, B, 5])
        probs = tf.nn.softmax(y_pred[..., 5 * B :], axis=-1)[:, :, :, None, :]  # from logits
        grid = tf.cast(tf.range(S), y_pred.dtype)
        cols, rows = grid[None, None, :, None], grid[None, :, None, None]
        size = tf.cast(S, y_pred.dtype)
        cx, cy = (cols + pred[..., 0]) / size, (rows + pred[..., 1]) / size
        w, h = tf.square(pred[..., 2]), tf.square(pred[..., 3])
        boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
        scores = pred[..., 4:5] * probs  # (N, S, S, B, C)
        n = tf.shape(y_pred)[0]
        return tf.reshape(boxes, [n, -1, 4]), tf.reshape(scores, [n, -1, tf.shape(probs)[-1]])

    def get_config(self):
        return {**super().get_config(), "boxes_per_cell": self.boxes_per_cell}


@keras.saving.register_keras_serializable(package="convflow")
class YoloV8Detections(Detections):
    """keras-cv YOLOv8's raw output -> detections in input pixels.

    ``{"boxes": (N, A, 64), "classes": (N, A, C)}`` over the anchor points of strides 8, 16
    and 32 of a square ``input_size`` input: each box side is a distribution over 16 bins
    (distribution focal loss), its expectation the distance from the anchor in strides;
    class scores are already sigmoid probabilities. As keras-cv's
    ``YOLOV8Detector.decode_predictions`` (``decode_regression_to_boxes``, ``get_anchors``,
    ``dist2bbox``), in TensorFlow ops so no keras-cv travels with the served graph.

    Args:
        input_size: side of the network's square input, a multiple of 32.
        **kwargs: :class:`Detections`' thresholds, ``max_detections``, ``crop``.
    """

    STRIDES = (8, 16, 32)
    BINS = 16

    def __init__(self, input_size=640, score_threshold=0.2, iou_threshold=0.5,
                 max_detections=100, crop=True, **kwargs):  # fmt: skip
        super().__init__(score_threshold, iou_threshold, max_detections, crop, **kwargs)
        self.input_size = int(input_size)

    @classmethod
    def input_size_for(cls, anchors: int) -> int:
        """The square input side that gives ``anchors`` anchor points.

        Raises:
            ValueError: no multiple of 32 does.
        """
        per_pixel = sum(1 / s**2 for s in cls.STRIDES)
        side = round((anchors / per_pixel) ** 0.5)
        if side % 32 or sum((side // s) ** 2 for s in cls.STRIDES) != anchors:
            raise ValueError(f"{anchors} anchor points are not a square YOLOv8 input")
        return side

    def _anchors(self):
        """Anchor centres (A, 2) as (x, y) pixels and their strides (A, 1)."""
        centres, strides = [], []
        for stride in self.STRIDES:
            c = tf.range(self.input_size // stride, dtype=tf.float32) * stride + stride / 2
            xs, ys = tf.meshgrid(c, c)  # row-major: y outer, x inner, as keras-cv
            centres.append(tf.reshape(tf.stack([xs, ys], -1), [-1, 2]))
            strides.append(tf.fill([tf.shape(centres[-1])[0], 1], float(stride)))
        return tf.concat(centres, 0), tf.concat(strides, 0)

    def _decode(self, y_pred):
        raw = tf.cast(y_pred["boxes"], tf.float32)
        scores = tf.cast(y_pred["classes"], tf.float32)
        n = tf.shape(raw)[0]
        bins = tf.nn.softmax(tf.reshape(raw, [n, -1, 4, self.BINS]), axis=-1)
        dist = tf.reduce_sum(bins * tf.range(self.BINS, dtype=tf.float32), -1)  # l, t, r, b
        centres, strides = self._anchors()
        xy1 = centres - dist[..., :2] * strides
        xy2 = centres + dist[..., 2:] * strides
        size = float(self.input_size)
        boxes = tf.stack([xy1[..., 1], xy1[..., 0], xy2[..., 1], xy2[..., 0]], -1) / size
        return boxes, scores

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size}


def detections_layer(y_pred, num_classes: int, **kwargs) -> Detections:
    """The post-processing layer for a detector's output: keras-cv YOLOv8's dict, else
    YOLO v1's ``(N, S, S, B·5 + C)`` tensor; ``kwargs`` go to :class:`Detections`."""
    if isinstance(y_pred, dict):
        size = YoloV8Detections.input_size_for(int(y_pred["boxes"].shape[1]))
        return YoloV8Detections(input_size=size, **kwargs)
    return YoloV1Detections(boxes_per_cell=(int(y_pred.shape[-1]) - num_classes) // 5, **kwargs)


def _variable_name(variable) -> str:
    """``layer/name`` of a Keras variable (``path``) or a restored tf.Variable (``name``)."""
    return str(getattr(variable, "path", None) or variable.name).split(":")[0]


def set_thresholds(model, **thresholds: float) -> dict[str, float]:
    """Assigns NMS thresholds of a served detector; returns all of them after the change.

    Args:
        model: the served Keras model, or its TF SavedModel as loaded by
            ``tf.saved_model.load`` (``pyfunc_model.get_raw_model()`` for a model loaded by
            ``mlflow.pyfunc.load_model``).
        **thresholds: ``score_threshold`` and/or ``iou_threshold``, each in [0, 1].

    Raises:
        ValueError: an unknown name, a value out of range, or a model without the
            threshold variables (not a convflow detector, or logged before they existed).
    """
    found = {}
    for v in model.variables:
        layer, _, name = _variable_name(v).rpartition("/")
        if layer.endswith(LAYER) and name in THRESHOLDS:
            found[name] = v
    for name, value in thresholds.items():
        if name not in THRESHOLDS:
            raise ValueError(f"unknown threshold {name!r}; expected one of {sorted(THRESHOLDS)}")
        low, high = THRESHOLDS[name]
        if not low <= float(value) <= high:
            raise ValueError(f"{name}={value!r} is outside [{low}, {high}]")
        if name not in found:
            raise ValueError(
                f"this model has no {LAYER}/{name} variable to override (not a convflow "
                "detector, or logged before thresholds could be overridden)"
            )
    for name, value in thresholds.items():
        found[name].assign(float(value))
    return {name: float(keras.ops.convert_to_numpy(v)) for name, v in sorted(found.items())}


def rows_to_detections(rows) -> dict:
    """One image's served rows ``(K, 6)`` -> ``{"boxes" (k, 4) [x1, y1, x2, y2] pixels,
    "scores" (k,), "classes" (k,) int}``, padding removed."""
    import numpy as np

    rows = np.asarray(rows, np.float32).reshape(-1, len(COLUMNS))
    rows = rows[rows[:, 5] >= 0]
    return {"boxes": rows[:, :4], "scores": rows[:, 4], "classes": rows[:, 5].astype(np.int64)}
