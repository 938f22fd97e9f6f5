"""Semantic segmentation: one class per pixel (the lecture's "Structured outputs" slides).

Records carry ``mask``: ``(H, W) uint8`` class indices, 255 = ignore (Pascal VOC's void).
Crops and resizes move the mask with the image by nearest neighbour, so no class value is
invented; contrast normalization touches only the image. The network ends in per-pixel
logits ``(B, h, w, K)``; training uses :class:`MaskedSparseCrossEntropy` (ignore pixels
skipped; optional median-frequency class weights as in SegNet, optional U-Net border
weights computed once per training record in tf.data) and Keras' MeanIoU. The served model
adds a softmax, maps the scores back onto the raw image's pixel grid and returns the class
map ``int32 (N, H, W)`` at the input's H×W.
Blessing metric: mean IoU of the served model on the raw test images (Long et al. 2015, §5).

Keras and TensorFlow load inside the methods that run in executors: ``convflow validate``
imports this module to check the model kind and must stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from convflow.components import masks as mask_ops
from convflow.components import plotting
from convflow.components.base import ComponentError
from convflow.components.examples import dataset
from convflow.components.targets import IMAGE_HEIGHT, IMAGE_WIDTH, TargetFeature
from convflow.components.tasks import segmentation_metrics as SM
from convflow.components.tasks import segmentation_plots as plots
from convflow.components.tasks.base import EvalInputs, Evaluation, Task, Window

MASK = "mask"
IGNORE_INDEX = mask_ops.IGNORE_INDEX
MASK_FEATURES = (TargetFeature(MASK, "uint8", (IMAGE_HEIGHT, IMAGE_WIDTH)),)
OVERLAYS_FILE, IOU_FILE, CONFUSION_FILE = "overlays.png", "per_class_iou.png", "confusion.png"
CLASS_MAP, PROBABILITIES = "class_map", "probabilities"  # the served outputs' names
# train.augment options that move pixels (or paste in another image's): the mask must move
# with them, and the image-only augmentation does not move it.
MOVES_PIXELS = (
    "flip", "translation", "zoom", "crop_padding", "rand_augment", "mixup_alpha", "cutmix_alpha",
)  # fmt: skip


class Segmentation(Task):
    """A class for every pixel; see the module docstring."""

    name = "segmentation"
    model_kinds = ("segmentation",)
    blessing_metric = "mean_iou"
    head_activation = "softmax"
    target_features = MASK_FEATURES
    optional_probabilities = True

    def check_target(self, target, image_shape, num_classes):
        mask = np.asarray(target[MASK])
        if mask.shape != tuple(image_shape[:2]):
            return f"mask shape {list(mask.shape)} != image {list(image_shape[:2])}"
        if num_classes is None:
            return None
        values = np.unique(mask)
        bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
        if len(bad):
            return f"mask values {bad.tolist()[:5]} not in [0, {num_classes}) nor {IGNORE_INDEX}"
        return None

    def class_histogram(self, targets, num_classes):
        values = np.concatenate([np.asarray(m).reshape(-1) for m in _masks(targets)] or [[]])
        values = values[values != IGNORE_INDEX].astype(np.int64)
        return np.bincount(values, minlength=num_classes)[:num_classes].astype(np.int64)

    def move_targets(self, targets: Mapping[str, np.ndarray], window: Window):
        rows = slice(window.y0, window.y0 + window.height)
        cols = slice(window.x0, window.x0 + window.width)

        def move(mask):
            return mask_ops.resize_nearest(
                np.asarray(mask)[..., rows, cols], window.out_height, window.out_width
            )

        column = targets[MASK]
        if isinstance(column, np.ndarray) and column.dtype != object:
            return {**targets, MASK: move(column)}
        moved = np.empty(len(column), object)
        moved[:] = [move(m) for m in column]
        return {**targets, MASK: moved}

    def train_problem(self, params) -> str | None:
        """Refuses ``train.augment`` options that move or mix image pixels: the image-only
        augmentation leaves the mask where it was, so the targets would be wrong. Photometric
        options (``contrast``, ``erasing_probability``) move nothing and are accepted."""
        augment = getattr(params, "augment", None)
        for key in MOVES_PIXELS:
            value = getattr(augment, key, None)
            if value not in (None, "none", False, 0, 0.0):
                return (
                    f"train.augment.{key}={value!r} moves image pixels but not the mask; "
                    "segmentation takes only photometric augmentation (contrast, "
                    f"erasing_probability): remove train.augment.{key}"
                )
        return None

    def pixel_weights(self, params):
        """U-Net's border weight map (:func:`weight_maps.unet_weight_map`) of each training
        mask when ``train.pixel_weighting`` is ``unet_border``; else None."""
        if getattr(params, "pixel_weighting", "none") != "unet_border":
            return None
        import tensorflow as tf  # runs inside tf.data's map, in the train executor
        from convflow.components.weight_maps import unet_weight_map

        w0, sigma = float(params.border_w0), float(params.border_sigma)

        def weigh(mask):
            w = tf.numpy_function(lambda m: unet_weight_map(m, w0, sigma), [mask], tf.float32)
            return tf.ensure_shape(w, mask.shape)

        return weigh

    def training_target(self, target, num_classes: int):
        import tensorflow as tf  # runs inside tf.data's map, in the train executor

        return tf.cast(target, tf.int32)

    def loss(self, params, examples=None):
        from convflow.models.segmentation_loss import MaskedSparseCrossEntropy

        weights = None
        if getattr(params, "class_weighting", "none") == "median_frequency":
            if examples is None:
                raise ComponentError("median-frequency class weights need the training split")
            weights = median_frequency_of(examples).tolist()
        return MaskedSparseCrossEntropy(IGNORE_INDEX, class_weights=weights)

    def metrics(self, num_classes: int | None = None) -> list:
        import keras

        if not num_classes:
            return []
        return [
            keras.metrics.MeanIoU(
                num_classes, name="mean_iou", ignore_class=IGNORE_INDEX, sparse_y_pred=False
            )
        ]

    def evaluate(self, inputs: EvalInputs) -> Evaluation:
        """The trained network on the transformed split and the served model on the raw one.

        - network view: loss, pixel accuracy, mean accuracy, mean IoU, frequency-weighted IoU
          and per-class IoU from one confusion matrix over the split's pixels;
        - served view: ``serving_mean_iou`` etc. of the class maps the served model returns
          at the raw images' sizes, against the raw masks, and the overlay grid.

        Raises:
            ComponentError: the split is empty.
        """
        names, k = inputs.class_names, len(inputs.class_names)
        cm, loss, count = network_confusion(inputs, k)
        if not count:
            raise ComponentError(
                f"{inputs.examples.uri}: split {inputs.split!r} is empty; nothing to evaluate"
            )
        metrics = {"loss": loss, **SM.scores(cm)}
        raw_masks = _masks(inputs.raw_targets)
        predicted = served_masks(
            lambda x: inputs.serving.predict(x, verbose=0), inputs.raw_images, inputs.batch_size
        )
        served_cm = _confusion(raw_masks, predicted, k)
        metrics |= {f"serving_{key}": v for key, v in SM.scores(served_cm).items()}
        out = inputs.out_dir
        limit = getattr(inputs.settings, "num_misclassified", 8) or 8
        files = [
            plots.overlay_grid(
                inputs.raw_images, raw_masks, predicted, names, out / OVERLAYS_FILE, min(limit, 8)
            ),
            plots.iou_bars(SM.per_class_iou(cm), names, out / IOU_FILE),
            plotting.confusion_matrix(cm, names, out / CONFUSION_FILE, percent=True),
        ]
        return Evaluation(metrics, SM.per_class(cm, names), files, count=count)

    def served_score(self, predict: Callable, images, targets, batch_size: int) -> float:
        masks = _masks(targets)
        predicted = served_masks(predict, images, batch_size)
        k = int(max(int(np.max(p)) for p in predicted) + 1) if len(predicted) else 1
        k = max(k, *(int(m[m != IGNORE_INDEX].max(initial=0)) + 1 for m in masks))
        return SM.scores(_confusion(masks, predicted, k))["mean_iou"]

    def serving_outputs(self, images, logits, transform, settings=None):
        """The class map ``int32 (N, H, W)`` at the input's H×W; with ``settings``
        ``{"probabilities": True}`` the dict ``{"class_map": ..., "probabilities": float32
        (N, H, W, K)}``, the softmax scores bilinearly resized to the input (each pixel's
        scores still sum to 1)."""
        import keras
        from convflow.models.layers.dense_output import ClassMap, ScoresToImageSize

        probs = keras.layers.Softmax(dtype="float32", name="softmax")(logits)
        cropped = transform is not None and "crop" in tuple(transform.steps)
        full = ScoresToImageSize(cropped=cropped, name="to_input_size")([probs, images])
        class_map = ClassMap(name=CLASS_MAP)(full)
        if not (settings or {}).get(PROBABILITIES):
            return class_map
        return {CLASS_MAP: class_map, PROBABILITIES: full}

    def output_specs(self, model) -> list[tuple]:
        """``(dtype, shape)``, or ``(dtype, shape, name)`` per output of a dict model."""
        if not isinstance(model.output, Mapping):
            return [("int32", (-1, -1, -1))]
        k = int(model.output[PROBABILITIES].shape[-1])
        return [
            ("int32", (-1, -1, -1), CLASS_MAP),
            ("float32", (-1, -1, -1, k), PROBABILITIES),
        ]

    def describe_prediction(self, outputs, class_names: Sequence[str]) -> str:
        mask = class_map_of(outputs)
        shares = mask_ops.class_shares(mask, len(class_names))
        order = np.argsort(-shares)
        return "  ".join(f"{class_names[i]} {shares[i]:.1%}" for i in order if shares[i] > 0)

    def save_prediction(self, image, outputs, class_names, files, stem: str):
        """Writes ``<stem>_mask.png`` (palette PNG, pixel = class) and ``<stem>_overlay.png``."""
        from PIL import Image

        mask = class_map_of(outputs).astype(np.uint8)
        mask_path = mask_ops.save_palette_png(mask, files.path(stem, "_mask.png"))
        overlay_path = files.path(stem, "_overlay.png")
        Image.fromarray(mask_ops.overlay(np.asarray(image), mask)).save(overlay_path)
        return [mask_path, overlay_path]


def median_frequency_of(examples) -> np.ndarray:
    """Median-frequency class weights (:func:`weight_maps.median_frequency_weights`) of the
    train split's masks; ``(K,)``."""
    from convflow.components.examples import ExamplesInfo
    from convflow.components.weight_maps import class_pixel_counts, median_frequency_weights

    k = len(ExamplesInfo.of(examples).class_names)
    pixels, image_pixels = np.zeros(k, np.int64), np.zeros(k, np.int64)
    ds = dataset(examples, "train", task=TASK).map(lambda x, y: y).batch(1024)
    for masks in ds.as_numpy_iterator():
        p, i = class_pixel_counts(masks, k)
        pixels, image_pixels = pixels + p, image_pixels + i
    return median_frequency_weights(pixels, image_pixels)


def _masks(targets) -> list[np.ndarray] | np.ndarray:
    """The mask column of a split's targets (bare for this one-feature task)."""
    if isinstance(targets, Mapping):
        return targets[MASK]
    return targets


def _confusion(true_masks, predicted, k: int) -> np.ndarray:
    cm = np.zeros((k, k), np.int64)
    for truth, pred in zip(true_masks, predicted, strict=True):
        cm += SM.confusion_matrix(np.asarray(truth), np.asarray(pred), k)
    return cm


def network_confusion(inputs: EvalInputs, k: int) -> tuple[np.ndarray, float, int]:
    """(confusion matrix, mean masked cross-entropy, images) of the network on a split."""
    import keras
    from convflow.models.segmentation_loss import MaskedSparseCrossEntropy

    cm, loss_sum, pixels, count = np.zeros((k, k), np.int64), 0.0, 0, 0
    ds = dataset(inputs.examples, inputs.split, task=TASK).batch(inputs.batch_size)
    loss = MaskedSparseCrossEntropy(IGNORE_INDEX)
    for images, masks in ds.as_numpy_iterator():
        logits = np.asarray(inputs.network.predict_on_batch(images), np.float32)
        valid = int((masks != IGNORE_INDEX).sum())
        loss_sum += float(keras.ops.convert_to_numpy(loss(masks, logits))) * valid
        pixels += valid
        cm += SM.confusion_matrix(masks, logits.argmax(-1), k)
        count += len(images)
    return cm, loss_sum / max(pixels, 1), count


def class_map_of(outputs) -> np.ndarray:
    """The class maps in a served model's answer: the array itself, or the ``class_map``
    entry of a ``register.probabilities`` model's dict (MLflow's keras pyfunc hands that
    dict back inside a 0-d object array)."""
    if isinstance(outputs, np.ndarray) and outputs.dtype == object and outputs.shape == ():
        outputs = outputs.item()
    if isinstance(outputs, Mapping):
        outputs = outputs[CLASS_MAP]
    return np.asarray(outputs)


def served_masks(predict: Callable, images, batch_size: int) -> list[np.ndarray]:
    """Class maps of a served model's ``predict`` over same-size batches or single images."""
    if isinstance(images, np.ndarray):
        out = []
        for i in range(0, len(images), batch_size):
            out.extend(class_map_of(predict(images[i : i + batch_size])))
        return out
    return [class_map_of(predict(image[None]))[0] for image in images]


TASK = Segmentation()
