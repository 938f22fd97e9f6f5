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


def served_outputs(model, image: np.ndarray):
    """The served model's outputs for one image (the batch axis dropped)."""
    outputs = model.predict(image[None])
    if isinstance(outputs, np.ndarray) and outputs.dtype == object and outputs.shape == ():
        outputs = outputs.item()  # MLflow's keras pyfunc wraps a dict of outputs in a 0-d array
    if isinstance(outputs, dict):
        return {k: np.asarray(v)[0] for k, v in outputs.items()}
    return np.asarray(outputs)[0]


def describe(model, task, classes: Sequence[str], image: np.ndarray) -> str:
    """The task's one-line answer for one image (classification: class<TAB>probability)."""
    return task.describe_prediction(served_outputs(model, image), classes)


class OutputFiles:
    """Per-input file stems under ``--out DIR``: never an input's own path, never reused."""

    def __init__(self, out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike]):
        self.dir = Path(out_dir)
        self._inputs = {Path(p).resolve() for p in inputs}
        self._used: set[str] = set()

    def stem(self, path: str | os.PathLike) -> str:
        """A stem for ``path``'s outputs, numbered when two inputs share a name."""
        base, n = Path(path).stem, 1
        stem = base
        while stem in self._used:
            n += 1
            stem = f"{base}_{n}"
        self._used.add(stem)
        return stem

    def path(self, stem: str, suffix: str) -> Path:
        """``DIR/<stem><suffix>``, the folder created.

        Raises:
            ValueError: the path is one of the inputs.
        """
        target = self.dir / f"{stem}{suffix}"
        if target.resolve() in self._inputs:
            raise ValueError(f"refusing to overwrite the input {target}; choose another --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        return target


def _load(model_uri: str, trust: bool, overrides: dict[str, float] | None, err: TextIO):
    """(model, class names, task) with ``overrides`` applied, or None once the reason is
    printed on ``err`` (a model that does not load, is not convflow's, or refuses them)."""
    try:
        model, classes = load_served(model_uri, trust)
    except UnsafeModel as e:
        print(f"error: {e}", file=err)
        return None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: cannot load model {model_uri}: {first}", file=err)
        return None
    task = served_task(model)
    if overrides:
        try:
            task.override_serving(model, overrides)
        except ValueError as e:
            print(f"error: {model_uri}: {e}", file=err)
            return None
    return model, classes, task


def predict(
    model_uri: str,
    paths: Iterable[str | os.PathLike],
    out: TextIO | None = None,
    err: TextIO | None = None,
    trust: bool = False,
    out_dir: str | os.PathLike = "predictions",
    overrides: dict[str, float] | None = None,
) -> int:
    """Runs the served model on each file; prints ``path<TAB>answer`` per file.

    The answer is the task's (classification: ``class<TAB>probability``; segmentation: the
    share of each class). A task that draws its answer (segmentation: a palette mask PNG and
    an overlay PNG) writes it under ``out_dir`` as ``<input stem>_<kind>.png``, never over an
    input, and the line ends with the files written.

    ``overrides`` change the served model's post-processing for this call
    (:meth:`Task.override_serving`; detection: ``score_threshold``, ``iou_threshold``).

    A file that cannot be read or classified gets one line on ``err`` naming it, and the
    others are still classified. A model that cannot be loaded, was not logged by convflow
    (unless ``trust``) or has no signature is reported with its URI.

    Returns:
        0 when every file was classified, 1 when some failed, 2 when the model did not load
        or does not take the overrides.
    """
    out, err = out or sys.stdout, err or sys.stderr
    loaded = _load(model_uri, trust, overrides, err)
    if loaded is None:
        return 2
    model, classes, task = loaded
    channels = model_channels(model)
    paths = list(paths)
    files = OutputFiles(out_dir, paths)
    failed = 0
    for path in paths:
        try:
            image = read_image(path, channels)
            outputs = served_outputs(model, image)
            answer = task.describe_prediction(outputs, classes)
            written = task.save_prediction(image, outputs, classes, files, files.stem(path))
            if written:
                answer += "\t" + " ".join(str(f) for f in written)
        except Exception as e:
            failed += 1
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {path}: {reason}", file=err)
            continue
        for line in answer.splitlines():  # detection: one line per box, each with its path
            print(f"{path}\t{line}", file=out)
    return 1 if failed else 0
