"""``convflow predict``: image files through a registered served model, one line per file."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
from convflow.components.images import WHITE, ImageRejected, decode_file, to_channels
from convflow.components.safe_load import UnsafeModel
from convflow.components.serving.mlflow_io import load_served, served_task


def model_channels(model) -> int:
    spec = model.metadata.get_input_schema().inputs[0]
    return int(spec.shape[-1])


def read_image(
    path: str | os.PathLike, channels: int, background: Sequence[int] = WHITE
) -> np.ndarray:
    """A file as a uint8 (H, W, C) array: any PIL image, or a .npy array of uint8 pixels.

    Image files go through the same decoder as ingest (components.images: EXIF orientation,
    bit depth scaled, transparency over ``background``), then to the model's channel count.

    Raises:
        ValueError: the file is not an image, or its array has an unusable shape/dtype.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] != channels or min(array.shape[:2]) < 1:
            raise ValueError(f"expected an H×W or H×W×{channels} array, got shape {array.shape}")
        if array.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got dtype {array.dtype}")
        return array
    try:
        return to_channels(decode_file(path, background), channels)
    except (ImageRejected, OSError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise ValueError(f"not a readable image ({reason})") from None


def describe(model, task, classes: Sequence[str], image: np.ndarray) -> str:
    """The task's one-line answer for one image (classification: class<TAB>probability)."""
    outputs = model.predict(image[None])
    first = (
        {k: np.asarray(v)[0] for k, v in outputs.items()}
        if isinstance(outputs, dict)
        else (np.asarray(outputs)[0])
    )
    return task.describe_prediction(first, classes)


def predict(
    model_uri: str,
    paths: Iterable[str | os.PathLike],
    out: TextIO | None = None,
    err: TextIO | None = None,
    trust: bool = False,
) -> int:
    """Runs the served model on each file; prints ``path<TAB>answer`` per file.

    The answer is the task's (classification: ``class<TAB>probability``).

    A file that cannot be read or classified gets one line on ``err`` naming it, and the
    others are still classified. A model that cannot be loaded, was not logged by convflow
    (unless ``trust``) or has no signature is reported with its URI.

    Returns:
        0 when every file was classified, 1 when some failed, 2 when the model did not load.
    """
    out, err = out or sys.stdout, err or sys.stderr
    try:
        model, classes = load_served(model_uri, trust)
    except UnsafeModel as e:
        print(f"error: {e}", file=err)
        return 2
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: cannot load model {model_uri}: {first}", file=err)
        return 2
    channels = model_channels(model)
    task = served_task(model)
    failed = 0
    for path in paths:
        try:
            answer = describe(model, task, classes, read_image(path, channels))
        except Exception as e:
            failed += 1
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {path}: {reason}", file=err)
            continue
        print(f"{path}\t{answer}", file=out)
    return 1 if failed else 0
