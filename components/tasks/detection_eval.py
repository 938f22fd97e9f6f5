"""Detection evaluation: the trained network on the transformed split and the served model
on raw images, both scored by pycocotools (``evaluate.coco_map``).

The network view decodes YOLO v1 outputs with a low score threshold (COCO ranks every
detection; thresholds belong to serving) and scores boxes in the transformed images' pixels.
The served view runs the served model as a consumer would, on raw images of any size, and
scores its boxes in each raw image's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from convflow.components.boxes import BoxTargets, from_xyxy_normalized
from convflow.components.evaluate.coco_map import evaluate_detections


def network_detections(network, images: np.ndarray, batch_size: int, num_classes: int,
                       iou_threshold: float, score_threshold: float) -> list[dict]:  # fmt: skip
    """Stored-convention detections of the network on transformed images (N, H, W, C).

    YOLO v1: decoded in numpy (``models.yolo.decode_predictions``, every class of every box
    scored); keras-cv YOLOv8 (dict outputs): the served graph's own decoding and NMS
    (``detection_serving.YoloV8Detections``) on the transformed images, without a crop.
    """
    from convflow.models.yolo import decode_predictions

    if isinstance(network.output, dict):
        return _yolov8_detections(network, images, batch_size, iou_threshold, score_threshold)
    boxes_per_cell = int(network.outputs[0].shape[-1] - num_classes) // 5
    y_pred = class_softmax(
        network.predict(images, batch_size=batch_size, verbose=0), boxes_per_cell
    )
    found = decode_predictions(
        y_pred, boxes_per_cell=boxes_per_cell,
        score_threshold=score_threshold, iou_threshold=iou_threshold, multi_label=True,
    )  # fmt: skip
    return [
        {"boxes": from_xyxy_normalized(d["boxes"]), "scores": d["scores"], "classes": d["classes"]}
        for d in found
    ]


def _yolov8_detections(network, images, batch_size, iou_threshold, score_threshold):
    from convflow.components.tasks.detection_serving import detections_layer

    layer = None
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        y_pred = network(chunk, training=False)
        if layer is None:
            layer = detections_layer(y_pred, 0, score_threshold=score_threshold,
                                     iou_threshold=iou_threshold, crop=False)  # fmt: skip
        rows = np.asarray(layer(chunk, y_pred))
        out += [_rows_to_stored(r, *chunk.shape[1:3]) for r in rows]
    return out


def class_softmax(y_pred, boxes_per_cell: int) -> np.ndarray:
    """The network's class logits (after the B·5 box values) -> probabilities."""
    y = np.asarray(y_pred, np.float64).copy()
    logits = y[..., 5 * boxes_per_cell :]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    y[..., 5 * boxes_per_cell :] = e / e.sum(-1, keepdims=True)
    return y


def _rows_to_stored(rows, height: int, width: int) -> dict:
    """Served rows (K, 6) in pixels -> stored-convention detections of that image."""
    from convflow.components.tasks.detection_serving import rows_to_detections

    d = rows_to_detections(rows)
    b = d["boxes"].reshape(-1, 4)
    stored = np.stack([b[:, 1] / height, b[:, 0] / width, b[:, 3] / height, b[:, 2] / width], 1)
    return {"boxes": stored.astype(np.float32), "scores": d["scores"], "classes": d["classes"]}


def served_detections(predict: Callable, images, batch_size: int) -> list[dict]:
    """Stored-convention detections of a served model's ``predict`` on raw images (an
    (N, H, W, C) array or a list of (H, W, C) arrays of any sizes)."""
    out = []
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            rows = np.asarray(predict(chunk))
            out += [_rows_to_stored(r, *chunk.shape[1:3]) for r in rows]
        return out
    for image in images:
        out.append(_rows_to_stored(np.asarray(predict(image[None]))[0], *image.shape[:2]))
    return out


def sizes_of(images) -> list[tuple[int, int]]:
    if isinstance(images, np.ndarray):
        return [tuple(images.shape[1:3])] * len(images)
    return [tuple(im.shape[:2]) for im in images]


def score(truths: Sequence[BoxTargets], detections: Sequence[dict], images, class_names,
          prefix: str = "") -> tuple[dict[str, float], dict]:  # fmt: skip
    """``({prefix}map, {prefix}map50, {prefix}map75}, per-class AP)`` by pycocotools."""
    summary, per_class = evaluate_detections(truths, detections, sizes_of(images), class_names)
    return {f"{prefix}{k}": v for k, v in summary.items()}, per_class


def yolo_loss(network, images, grids, batch_size: int, loss) -> float:
    """Mean per-image YOLO loss of the network on transformed images and encoded grids."""
    import keras

    y_pred = network.predict(images, batch_size=batch_size, verbose=0)
    return float(keras.ops.convert_to_numpy(loss(grids, np.asarray(y_pred, np.float32))))
