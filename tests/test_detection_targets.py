"""Detection targets in tf.data: the YOLO grid equals models.yolo.encode_targets, padding and
ignore boxes never become targets, and box-aware augmentation moves boxes with pixels."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from convflow.components.boxes import to_xyxy_normalized
from convflow.components.tasks.detection_targets import box_augmentation, pad_boxes, yolo_v1_grid
from convflow.models.yolo import encode_targets


def test_grid_equals_encode_targets_with_shared_cells_padding_and_ignore():
    rng = np.random.default_rng(0)
    S, C, M = 4, 3, 6
    images_boxes, images_classes, grids = [], [], []
    for n in range(8):
        k = int(rng.integers(0, 5))
        lo = rng.uniform(0, 0.7, (k, 2))
        boxes = np.concatenate([lo, lo + rng.uniform(0.05, 0.3, (k, 2))], 1).astype(np.float32)
        classes = rng.integers(0, C, k)
        ignore = rng.random(k) < 0.2
        if n == 0 and k >= 2:  # two boxes with their centres in one cell: the later wins
            boxes[1] = boxes[0] + 0.001
        b, c = pad_boxes(boxes, classes, ignore, M)
        images_boxes.append(b)
        images_classes.append(c)
        keep = ~ignore
        grids.append(encode_targets(to_xyxy_normalized(boxes[keep]), classes[keep], S, C))
    got = yolo_v1_grid(tf.stack(images_boxes), tf.stack(images_classes), S, C).numpy()
    np.testing.assert_allclose(got, np.stack(grids), atol=1e-6)


def test_pad_boxes_drops_ignore_and_pads():
    b, c = pad_boxes([[0, 0, 0.5, 0.5], [0.1, 0.1, 0.2, 0.2]], [2, 1], [True, False], 3)
    np.testing.assert_allclose(b.numpy(), [[0.1, 0.1, 0.2, 0.2], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert c.numpy().tolist() == [1, -1, -1]


def test_augmentation_moves_boxes_with_the_pixels():
    # A bright square at rows 8..24, columns 4..20 of a 32x32 image; flip and shift it.
    image = np.zeros((1, 32, 32, 1), np.float32)
    image[0, 8:24, 4:20] = 1.0
    boxes = tf.constant([[[8 / 32, 4 / 32, 24 / 32, 20 / 32], [0, 0, 0, 0]]], tf.float32)
    classes = tf.constant([[0, -1]], tf.int32)
    augment = box_augmentation("horizontal", 0.2, 0.0, seed=3)
    for _ in range(4):
        out, b, c = augment(tf.constant(image), boxes, classes)
        rows = np.flatnonzero(out.numpy()[0, :, :, 0].max(1) > 0.5)
        cols = np.flatnonzero(out.numpy()[0, :, :, 0].max(0) > 0.5)
        if not len(rows):
            assert c.numpy()[0, 0] == -1  # shifted out entirely: dropped
            continue
        want = [rows[0] / 32, cols[0] / 32, (rows[-1] + 1) / 32, (cols[-1] + 1) / 32]
        np.testing.assert_allclose(b.numpy()[0, 0], want, atol=1.5 / 32)
        assert c.numpy()[0].tolist() == [0, -1]
