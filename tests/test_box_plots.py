"""Box pictures are written and show the boxes where they are."""

from __future__ import annotations

import numpy as np
from convflow.components.boxes import BoxTargets
from convflow.components.evaluate.box_plots import annotated_image, detection_grid
from PIL import Image


def test_detection_grid_and_annotated_image(tmp_path):
    images = [np.zeros((64, 64, 1), np.uint8), np.full((32, 48, 3), 200, np.uint8)]
    truths = [
        BoxTargets.of([[0.1, 0.1, 0.5, 0.5]], [0]),
        BoxTargets.of([[0, 0, 1, 1]], [1], [True]),
    ]
    dets = [
        {"boxes": np.array([[0.1, 0.2, 0.5, 0.6]]), "scores": [0.8], "classes": [1]},
        {"boxes": np.zeros((0, 4)), "scores": [], "classes": []},
    ]
    grid = detection_grid(images, truths, dets, ["a", "b"], tmp_path / "grid.png", columns=2)
    assert Image.open(grid).size[0] > 200
    out = annotated_image(images[0], [[10, 10, 40, 30]], ["b 0.80"], tmp_path / "one.png")
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert pixels.shape[:2] == (384, 384)  # 64 px enlarged to stay readable
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 100)
    ys, xs = np.nonzero(red)
    # the box's left edge sits at x = 10 px of 64 -> about 60 of 384 (6x)
    assert abs(xs.min() - 57) < 6 and abs(ys.min() - 57) < 25
