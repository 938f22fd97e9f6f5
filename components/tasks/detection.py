"""Object detection: boxes with classes (Redmon et al. 2016, YOLO; the lecture's detection
slides).

Records carry ``boxes`` (n, 4) float32 in the stored convention (normalized ``[y_min, x_min,
y_max, x_max]``, ``components.boxes``), ``classes`` (n,) int64 and ``ignore`` (n,) int64 (COCO
crowd / VOC difficult: evaluation only). Crop and resize move, clip and drop boxes with the
pixels; contrast normalization leaves them. Training pads boxes per image, augments image
and boxes together, then encodes YOLO v1 grids, or for ``train.model: yolov8`` keras-cv's
``xyxy`` pixel labels, trained with keras-cv's own loss (``tasks.detection_targets``).
Evaluation is COCO mAP by pycocotools (``evaluate.coco_map``); blessing metric: mAP@0.5
(``min_map50`` on the network, the champion comparison on the served model on raw test
images). The served model returns boxes in each input's pixels after NMS, thresholds
overridable per process (``tasks.detection_serving``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.boxes import BoxTargets, crop
from convflow.components.targets import TargetFeature, Window
from convflow.components.tasks.base import EvalInputs, Evaluation, Task

BOXES, CLASSES, IGNORE = "boxes", "classes", "ignore"
BOX_FEATURES = (
    TargetFeature(BOXES, "float32", (None, 4)),
    TargetFeature(CLASSES, "int64", (None,)),
    TargetFeature(IGNORE, "int64", (None,)),
)
GRID_FILE = "detections.png"
#: boxes per image that training keeps (the scenes have at most 4; COCO at most ~90).
MAX_TRAIN_BOXES = 100
#: the network-view mAP keeps every box scoring at least this (COCO evaluates ranked lists).
EVAL_SCORE_THRESHOLD = 0.01
#: the zoo family trained through keras-cv (its own loss, label format and raw outputs).
YOLOV8 = "yolov8"


def family(params) -> str:
    """The zoo family of ``train.model`` (``yolo`` for YOLO v1, ``yolov8``)."""
    from convflow.models import zoo  # executors only: the zoo imports keras

    return zoo.get_spec(params.model).family if params is not None else "yolo"


def targets_of(cols: Mapping[str, np.ndarray], i: int) -> BoxTargets:
    """Record ``i`` of target columns as :class:`BoxTargets`."""
    return BoxTargets.of(cols[BOXES][i], cols[CLASSES][i], np.asarray(cols[IGNORE][i], bool))


def _count(cols: Mapping[str, np.ndarray]) -> int:
    return len(cols[BOXES])


def box_reason(target: Mapping[str, np.ndarray], num_classes: int | None) -> str | None:
    """Why one record's boxes are unusable, or None."""
    boxes, classes = np.asarray(target[BOXES]), np.asarray(target[CLASSES])
    if not (len(boxes) == len(classes) == len(target[IGNORE])):
        return f"{len(boxes)} boxes, {len(classes)} classes, {len(target[IGNORE])} ignore flags"
    if len(boxes) and not (np.isfinite(boxes).all() and boxes.min() >= 0 and boxes.max() <= 1):
        return f"boxes outside [0, 1] (normalized): {boxes.round(3).tolist()}"
    flat = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if flat.any():
        return f"box {boxes[np.argmax(flat)].round(3).tolist()} has non-positive size"
    if (
        num_classes is not None
        and len(classes)
        and not (0 <= classes.min() <= classes.max() < num_classes)
    ):
        bad = int(classes[(classes < 0) | (classes >= num_classes)][0])
        return f"class {bad} outside [0, {num_classes})"
    return None


class Detection(Task):
    """Boxes, classes and scores; see the module docstring."""

    name = "detection"
    model_kinds = ("detection",)
    blessing_metric = "map50"
    head_activation = None
    target_features = BOX_FEATURES

    def check_target(self, target, image_shape, num_classes):
        return box_reason(target, num_classes)

    def class_histogram(self, targets, num_classes):
        counts = np.zeros(num_classes, np.int64)
        for classes, ignore in zip(targets[CLASSES], targets[IGNORE], strict=True):
            np.add.at(counts, np.asarray(classes, np.int64)[np.asarray(ignore) == 0], 1)
        return counts

    def move_targets(self, targets: Mapping[str, np.ndarray], window: Window):
        """Boxes into the window (shifted, scaled, clipped); boxes cropped away are dropped
        and counted in the Beam counter ``preprocess/boxes_cropped_away``."""
        from apache_beam.metrics.metric import Metrics  # runs inside the Beam job only

        moved, dropped = [], 0
        for i in range(_count(targets)):
            t, d = crop(targets_of(targets, i), window.in_height, window.in_width,
                        window.y0, window.x0, window.height, window.width)  # fmt: skip
            moved.append(t)
            dropped += d
        if dropped:
            Metrics.counter("preprocess", "boxes_cropped_away").inc(dropped)
        return columns_of(moved)

    # --- training --------------------------------------------------------------------
    def training_target(self, target, num_classes: int):
        """Padded ``(boxes (M, 4), classes (M,))``; the YOLO grid is made per batch, after
        augmentation (:meth:`batch_targets`), since flips and shifts move the boxes."""
        from convflow.components.tasks.detection_targets import pad_boxes

        return pad_boxes(target[BOXES], target[CLASSES], target[IGNORE], MAX_TRAIN_BOXES)

    def batch_targets(self, params, output_shape, num_classes: int, training: bool):
        """A batch map ``(images, (boxes, classes)) -> (images, YOLO grid)``: on the train
        split, flip/translation/zoom (``train.augment``) move image and boxes together first.

        Raises:
            ComponentError: an image-only augmentation is switched on.
        """
        from convflow.components.tasks.detection_targets import (
            box_augmentation,
            yolo_v1_grid,
            yolov8_labels,
        )

        augment = params.augment if params is not None else None
        image_only = [
            k
            for k in ("rand_augment", "mixup_alpha", "cutmix_alpha", "erasing_probability",
                      "crop_padding", "contrast")
            if augment is not None and getattr(augment, k)
        ]  # fmt: skip
        if training and image_only:
            raise ComponentError(
                f"train.augment.{image_only[0]} does not move boxes; for detection use flip, "
                "translation and zoom"
            )
        keras_cv = family(params) == YOLOV8
        grid = None if keras_cv else int(output_shape[1])
        moves = None
        if training and augment is not None:
            moves = box_augmentation(augment.flip, augment.translation, augment.zoom, params.seed)

        def encode(images, target):
            boxes, classes = target
            if moves is not None:
                images, boxes, classes = moves(images, boxes, classes)
            if keras_cv:
                import tensorflow as tf  # runs in tf.data only

                return images, yolov8_labels(boxes, classes, tf.shape(images)[1:3])
            return images, yolo_v1_grid(boxes, classes, grid, num_classes)

        return encode

    def compile_args(self, params, examples, num_classes: int) -> dict:
        """YOLOv8: keras-cv's own losses (CIoU on boxes, binary cross-entropy on the sigmoid
        class scores, its task-aligned assigner); YOLO v1: :meth:`loss`."""
        if family(params) == YOLOV8:
            kwargs = params.model_kwargs.get(params.model, params.model_kwargs)
            box_format = kwargs.get("bounding_box_format", "xyxy")
            if box_format != "xyxy":
                raise ComponentError(
                    f"train.model_kwargs.{params.model}.bounding_box_format={box_format!r}: "
                    "the detection task feeds keras-cv 'xyxy' pixel boxes; leave it out"
                )
            return {"box_loss": "ciou", "classification_loss": "binary_crossentropy"}
        return super().compile_args(params, examples, num_classes)

    def loss(self, params, examples=None):
        from convflow.models.yolo import YOLOv1Loss

        kwargs = params.model_kwargs
        if isinstance(kwargs.get(params.model), dict):  # keyed by model name
            kwargs = kwargs[params.model]
        # The network ends in logits (classifier_activation=None): softmax in loss and decoding.
        return YOLOv1Loss(
            boxes_per_cell=kwargs.get("boxes_per_cell", 2),
            class_loss=params.class_loss,
            from_logits=True,
        )

    def metrics(self, num_classes: int | None = None) -> list:
        return []  # mAP needs decoding and NMS over the whole split: the evaluate step's

    # --- evaluation ------------------------------------------------------------------
    def evaluate(self, inputs: EvalInputs) -> Evaluation:
        """COCO mAP@[.5:.95], mAP@0.5, mAP@0.75 and per-class AP (pycocotools) of the
        network on the transformed split and of the served model on the raw split
        (``serving_map50`` decides the blessing), plus a grid of raw test images with true
        and served boxes.

        Raises:
            ComponentError: the split is empty.
        """
        from convflow.components.evaluate.box_plots import detection_grid
        from convflow.components.examples import read_split
        from convflow.components.tasks import detection_eval as E

        s = inputs.settings
        images, cols = read_split(inputs.examples, inputs.split, self)
        if not len(images):
            raise ComponentError(
                f"{inputs.examples.uri}: split {inputs.split!r} is empty; nothing to evaluate"
            )
        names = inputs.class_names
        truths = [targets_of(cols, i) for i in range(len(images))]
        found = E.network_detections(inputs.network, images, inputs.batch_size, len(names),
                                     s.iou_threshold, EVAL_SCORE_THRESHOLD)  # fmt: skip
        metrics, per_class = E.score(truths, found, images, names)
        raw_cols = inputs.raw_targets
        raw_truths = [targets_of(raw_cols, i) for i in range(_count(raw_cols))]
        served = E.served_detections(
            lambda x: inputs.serving.predict(x, verbose=0), inputs.raw_images, inputs.batch_size
        )
        serving, _ = E.score(raw_truths, served, inputs.raw_images, names, prefix="serving_")
        metrics.update(serving)
        metrics["loss"] = 1.0 - metrics["map50"]  # blessing's max_loss reads "loss"
        n = min(s.num_misclassified or 16, 16, len(raw_truths))
        grid = detection_grid(
            [inputs.raw_images[i] for i in range(n)], raw_truths[:n], served[:n], names,
            inputs.out_dir / GRID_FILE,
        )  # fmt: skip
        return Evaluation(metrics, per_class, [grid], count=len(truths))

    def served_score(self, predict: Callable, images, targets, batch_size: int) -> float:
        from convflow.components.tasks import detection_eval as E

        truths = [targets_of(targets, i) for i in range(_count(targets))]
        found = E.served_detections(predict, images, batch_size)
        names = [
            str(c) for c in range(1 + max([int(t.classes.max()) for t in truths if len(t)] or [0]))
        ]
        return E.score(truths, found, images, names)[0]["map50"]

    # --- serving ---------------------------------------------------------------------
    def serving_settings(self, params) -> dict:
        """The evaluate step's NMS settings, which the served graph bakes in."""
        return {
            "score_threshold": float(params.score_threshold),
            "iou_threshold": float(params.iou_threshold),
            "max_detections": int(params.max_detections),
        }

    def serving_outputs(self, images, logits, transform, settings=None):
        """``(N, max_detections, 6)`` rows ``[x1, y1, x2, y2, score, class]`` in each input's
        pixels (``tasks.detection_serving``); thresholds from ``settings``
        (:meth:`serving_settings`)."""
        from convflow.components.tasks.detection_serving import LAYER, detections_layer

        s = dict(settings or {})
        num_classes = s.get("num_classes")
        if not num_classes:
            raise ValueError(
                "detection serving needs settings['num_classes'] (the evaluate step's)"
            )
        steps = tuple(getattr(transform, "steps", ()) or ())
        nms = {
            "score_threshold": s.get("score_threshold", 0.2),
            "iou_threshold": s.get("iou_threshold", 0.5),
            "max_detections": s.get("max_detections", 100),
            "crop": "crop" in steps,
            "name": LAYER,
        }
        return detections_layer(logits, int(num_classes), **nms)(images, logits)

    def override_serving(self, model, settings) -> dict:
        """Assigns ``score_threshold``/``iou_threshold`` of a served detector (a pyfunc model,
        its raw SavedModel or the Keras graph); see ``detection_serving.set_thresholds``."""
        from convflow.components.tasks.detection_serving import set_thresholds

        raw = model.get_raw_model() if hasattr(model, "get_raw_model") else model
        return set_thresholds(raw, **settings)

    def output_specs(self, model) -> list[tuple[str, tuple[int, ...]]]:
        return [("float32", (-1, int(model.outputs[0].shape[1]), 6))]

    def save_prediction(self, image, outputs, class_names: Sequence[str], files, stem: str):
        """Writes ``<stem>_boxes.png`` under ``--out``: the input with its boxes, labelled
        ``class score``; returns its path."""
        return _save_prediction(image, outputs, class_names, files, stem)

    def describe_prediction(self, outputs, class_names: Sequence[str]) -> str:
        """One line per box: ``class<TAB>score<TAB>x1,y1,x2,y2`` (pixels of the input)."""
        from convflow.components.tasks.detection_serving import rows_to_detections

        d = rows_to_detections(outputs)
        if not len(d["scores"]):
            return "no boxes"
        lines = [
            f"{class_names[c]}\t{s:.4f}\t" + ",".join(f"{v:.1f}" for v in box)
            for box, s, c in zip(d["boxes"], d["scores"], d["classes"], strict=True)
        ]
        return "\n".join(lines)


def _save_prediction(image, outputs, class_names, files, stem):
    """``<stem>_boxes.png``: the input with its served boxes drawn and labelled."""
    from convflow.components.evaluate.box_plots import annotated_image
    from convflow.components.tasks.detection_serving import rows_to_detections

    d = rows_to_detections(outputs)
    labels = [f"{class_names[c]} {s:.2f}" for c, s in zip(d["classes"], d["scores"], strict=True)]
    return [annotated_image(image, d["boxes"], labels, files.path(stem, "_boxes.png"))]


def columns_of(targets: Sequence[BoxTargets]) -> dict[str, np.ndarray]:
    """Per-record BoxTargets -> target columns (1-D object arrays, one entry per record)."""
    cols = {}
    for name, get in ((BOXES, lambda t: t.boxes.astype(np.float32)),
                      (CLASSES, lambda t: t.classes.astype(np.int64)),
                      (IGNORE, lambda t: t.ignore.astype(np.int64))):  # fmt: skip
        column = np.empty(len(targets), object)
        for i, t in enumerate(targets):  # one by one: equal shapes must not broadcast
            column[i] = get(t)
        cols[name] = column
    return cols
