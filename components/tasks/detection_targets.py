"""Detection targets in tf.data: padded box batches, box-aware augmentation, YOLO v1 grids.

Boxes travel through tf.data padded to ``max_boxes`` per image (class -1 marks padding and
ignore boxes, which are evaluation-only), in the stored convention (normalized
``[y_min, x_min, y_max, x_max]``, keras' ``rel_yxyx``). Augmentation uses Keras core
preprocessing layers that move bounding boxes with the pixels; the YOLO v1 grid is encoded
after augmentation, vectorized over the batch. TensorFlow and Keras are imported inside the
functions: these run in the train executor only.
"""

from __future__ import annotations

BOX_FORMAT = "rel_yxyx"  # keras.utils.bounding_boxes' name for the stored convention
PAD_CLASS = -1


def pad_boxes(boxes, classes, ignore, max_boxes: int):
    """One record's boxes -> ``(max_boxes, 4)`` float32 and ``(max_boxes,)`` int32 classes.

    Ignore boxes (crowd/difficult) become padding: they are never training targets. Boxes
    past ``max_boxes`` are cut (the ingest statistics report the largest count per image).
    """
    import tensorflow as tf

    keep = tf.logical_not(tf.cast(ignore, tf.bool))
    boxes = tf.boolean_mask(tf.reshape(tf.cast(boxes, tf.float32), [-1, 4]), keep)[:max_boxes]
    classes = tf.boolean_mask(tf.cast(classes, tf.int32), keep)[:max_boxes]
    pad = max_boxes - tf.shape(classes)[0]
    boxes = tf.pad(boxes, [[0, pad], [0, 0]])
    classes = tf.pad(classes, [[0, pad]], constant_values=PAD_CLASS)
    return tf.ensure_shape(boxes, [max_boxes, 4]), tf.ensure_shape(classes, [max_boxes])


def box_augmentation(flip: str, translation: float, zoom: float, seed: int):
    """A batch function ``(images, boxes, classes) -> (images, boxes, classes)``, or None.

    Keras core layers (``RandomFlip``, ``RandomTranslation``, ``RandomZoom``) with
    ``bounding_box_format="rel_yxyx"`` move the boxes with the pixels and clip them to the
    image; a box pushed entirely outside comes back with zero area and is dropped (class -1).

    Args:
        flip: "none", "horizontal", "vertical" or "horizontal_and_vertical".
        translation: largest shift as a fraction of height and width (0 = off).
        zoom: largest zoom in or out as a fraction (0 = off).
        seed: the layers' seed.
    """
    import keras
    import tensorflow as tf

    kw = {"bounding_box_format": BOX_FORMAT, "dtype": "float32"}
    layers = []
    if flip != "none":
        layers.append(keras.layers.RandomFlip(flip, seed=seed, **kw))
    if translation:
        layers.append(
            keras.layers.RandomTranslation(
                translation, translation, fill_mode="constant", seed=seed + 1, **kw
            )
        )
    if zoom:
        layers.append(
            keras.layers.RandomZoom(zoom, zoom, fill_mode="constant", seed=seed + 2, **kw)
        )
    if not layers:
        return None

    def augment(images, boxes, classes):
        data = {"images": images, "bounding_boxes": {"boxes": boxes, "labels": classes}}
        for layer in layers:
            data = layer(data, training=True)
        boxes = tf.clip_by_value(data["bounding_boxes"]["boxes"], 0.0, 1.0)
        gone = (boxes[..., 2] - boxes[..., 0] <= 0) | (boxes[..., 3] - boxes[..., 1] <= 0)
        classes = tf.where(gone, PAD_CLASS, tf.cast(data["bounding_boxes"]["labels"], tf.int32))
        return data["images"], boxes, classes

    return augment


def yolo_v1_grid(boxes, classes, grid_size: int, num_classes: int):
    """Padded box batches -> YOLO v1 targets ``(N, S, S, 5 + C)``, as ``models.yolo``'s
    ``encode_targets`` does per image: ``[x, y, w, h, has_object, one-hot class]``, the
    centre cell responsible, a later box replacing an earlier one in the same cell.

    Args:
        boxes: (N, M, 4) float32, stored convention.
        classes: (N, M) int32, -1 for padding.
        grid_size: S.
        num_classes: C.
    """
    import tensorflow as tf

    S = grid_size
    valid = classes >= 0
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    cy, cx = (y1 + y2) / 2 * S, (x1 + x2) / 2 * S
    row = tf.minimum(tf.cast(tf.floor(cy), tf.int32), S - 1)
    col = tf.minimum(tf.cast(tf.floor(cx), tf.int32), S - 1)
    values = tf.concat(
        [
            tf.stack(
                [cx - tf.cast(col, cx.dtype), cy - tf.cast(row, cy.dtype), x2 - x1, y2 - y1], -1
            ),
            tf.ones_like(cx)[..., None],
            tf.one_hot(tf.maximum(classes, 0), num_classes, dtype=tf.float32),
        ],
        -1,
    )  # (N, M, 5 + C)
    cell = tf.one_hot(row * S + col, S * S) * tf.cast(valid, tf.float32)[..., None]  # (N, M, SS)
    order = tf.range(1, tf.shape(boxes)[1] + 1, dtype=tf.float32)[None, :, None]
    last = tf.argmax(cell * order, axis=1)  # (N, SS): the last valid box in each cell
    has = tf.reduce_max(cell, axis=1)[..., None]  # (N, SS, 1)
    grid = tf.gather(values, last, batch_dims=1) * has
    return tf.reshape(grid, [-1, S, S, 5 + num_classes])


def yolov8_labels(boxes, classes, image_size):
    """Padded box batches -> keras-cv YOLOv8's labels ``{"boxes": (N, M, 4) xyxy pixels,
    "classes": (N, M) float32}``, -1 in both for padding (its ``compute_loss`` masks boxes
    that are all -1).

    Args:
        boxes: (N, M, 4) float32, stored convention (normalized ``[y1, x1, y2, x2]``).
        classes: (N, M) int32, -1 for padding.
        image_size: (height, width) of the network's input in pixels (ints or a tensor).
    """
    import tensorflow as tf

    height, width = tf.unstack(tf.cast(image_size, tf.float32))
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    pixels = tf.stack([x1 * width, y1 * height, x2 * width, y2 * height], -1)
    valid = classes >= 0
    pixels = tf.where(valid[..., None], pixels, -1.0)
    return {"boxes": pixels, "classes": tf.cast(classes, tf.float32)}
