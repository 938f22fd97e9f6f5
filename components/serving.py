"""The served model and its consumer.

The served model is one Keras graph, raw image in, class probabilities out::

    uint8 (batch, H, W, C), any H and W
      -> preprocessor (components.preprocess.build_preprocessor: the Beam job's transforms)
      -> trained network (float32 logits)
      -> softmax (float32)

It is logged to MLflow as a TF SavedModel export (``save_exported_model=True``): consumers
need TensorFlow and MLflow, not convflow's custom layers. Class names travel in the MLflow
model's metadata. The README's three lines::

    model = mlflow.pyfunc.load_model("models:/fashion_mnist_lenet@champion")
    probs = model.predict(np.asarray(PIL.Image.open("shoe.png").convert("L"))[None, ..., None])
    print(model.metadata.metadata["class_names"][probs.argmax()], probs.max())
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from convflow.components.images import WHITE, ImageRejected, decode_file, to_channels

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_ARTIFACT = "serving_model"
CLASS_NAMES = "class_names"


def build_serving_model(preprocessor, network, name: str = "serving"):
    """Raw uint8 images -> class probabilities: preprocessor + network + softmax."""
    import keras

    channels = preprocessor.inputs[0].shape[-1]
    inputs = keras.Input((None, None, channels), dtype=preprocessor.inputs[0].dtype, name="image")
    logits = network(preprocessor(inputs))
    probs = keras.layers.Softmax(dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probs, name=name)


def load_network(model_artifact):
    """The trained network (logits) from a Model artifact, without its optimizer."""
    import convflow.models.zoo  # noqa: F401 - registers the zoo's custom layers for deserialization
    import keras

    return keras.saving.load_model(
        model_artifact.path / model_artifact.properties.get("file", "model.keras"), compile=False
    )


def serving_model_for(model_artifact, examples_artifact):
    """The served model for a Model artifact trained on preprocessed ``examples_artifact``."""
    from convflow.components.preprocess import build_preprocessor

    preprocessor = build_preprocessor(examples_artifact.properties)
    return build_serving_model(preprocessor, load_network(model_artifact))


def signature(model):
    """uint8 (-1, -1, -1, C) in, float32 (-1, classes) out.

    The specs are unnamed on purpose: a named input makes pyfunc wrap arrays in a dict,
    which the exported SavedModel's ``serve`` endpoint rejects.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    channels = model.inputs[0].shape[-1]
    classes = model.outputs[0].shape[-1]
    dtype = np.dtype(str(model.inputs[0].dtype).replace("tf.", ""))
    return ModelSignature(
        inputs=Schema([TensorSpec(dtype, (-1, -1, -1, channels))]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, classes))]),
    )


def pinned_requirements() -> list[str]:
    """The serving environment, pinned to what trained and exported the model."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in ("tensorflow-cpu", "tensorflow", "keras", "mlflow", "numpy", "pillow"):
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    if any(p.startswith("tensorflow-cpu==") for p in pins):
        pins = [p for p in pins if not p.startswith("tensorflow==")]
    return pins


def log_serving_model(model, class_names: Sequence[str], name: str = MODEL_ARTIFACT):
    """Logs the served model to the active MLflow run; returns its ModelInfo."""
    import mlflow

    # NOTE: input_example= makes mlflow 3.17 fail with FileNotFoundError for exported Keras
    # models; the explicit signature carries the same schema. The export prints a page of
    # endpoint details to stdout, which would bury the pipeline's own output.
    with contextlib.redirect_stdout(io.StringIO()):
        return mlflow.keras.log_model(
            model,
            name=name,
            save_exported_model=True,
            signature=signature(model),
            pip_requirements=pinned_requirements(),
            metadata={CLASS_NAMES: list(class_names)},
        )


@contextlib.contextmanager
def tracking(uri: str | None):
    """Points MLflow's tracking and registry at ``uri`` inside the block (None: unchanged).

    MLflow keeps the URIs in module globals *and* exports them as environment variables for
    subprocesses; both are put back afterwards, so a block leaves no trace.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if not uri:
        yield
        return
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: os.environ.get(k) for k in names}
    before = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_served(model_uri: str) -> tuple[Any, list[str]]:
    """(pyfunc model, class names) for a served model URI such as ``models:/name@champion``."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    meta = model.metadata.metadata or {}
    classes = meta.get(CLASS_NAMES)
    if not classes:
        raise ValueError(
            f"{model_uri} has no class names in its metadata; was it logged by convflow?"
        )
    return model, list(classes)


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


def classify(model, classes: Sequence[str], image: np.ndarray) -> tuple[str, float]:
    probs = np.asarray(model.predict(image[None]))[0]
    index = int(np.argmax(probs))
    return classes[index], float(probs[index])


def predict(
    model_uri: str,
    paths: Iterable[str | os.PathLike],
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Classifies each file; prints ``path<TAB>class<TAB>probability`` per file.

    A file that cannot be read or classified gets one line on ``err`` naming it, and the
    others are still classified. A model that cannot be loaded is reported with its URI.

    Returns:
        0 when every file was classified, 1 when some failed, 2 when the model did not load.
    """
    out, err = out or sys.stdout, err or sys.stderr
    try:
        model, classes = load_served(model_uri)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: cannot load model {model_uri}: {first}", file=err)
        return 2
    channels = model_channels(model)
    failed = 0
    for path in paths:
        try:
            name, prob = classify(model, classes, read_image(path, channels))
        except Exception as e:
            failed += 1
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {path}: {reason}", file=err)
            continue
        print(f"{path}\t{name}\t{prob:.4f}", file=out)
    return 1 if failed else 0


def lineage_tags(pipeline: Mapping[str, Any], examples_fingerprint: str, blessed: bool) -> dict:
    """Version tags that say where a registered model came from."""
    return {
        "convflow.dataset_fingerprint": examples_fingerprint,
        "convflow.config_hash": str(pipeline.get("config_hash", "")),
        "convflow.git_commit": str(pipeline.get("git_commit", "")),
        "convflow.pipeline_run_id": str(pipeline.get("run_id", "")),
        "convflow.pipeline_name": str(pipeline.get("pipeline_name", "")),
        "convflow.blessed": str(bool(blessed)).lower(),
    }
