"""The served model in MLflow: logging (signature, metadata, pinned requirements), loading,
the tracking-URI context, and the lineage tags of registered versions.

The model is logged as a TF SavedModel export (``save_exported_model=True``): consumers need
TensorFlow and MLflow, not convflow's custom layers. Class names and the task travel in the
MLflow model's metadata. The README's three lines::

    model = mlflow.pyfunc.load_model("models:/fashion_mnist_lenet@champion")
    probs = model.predict(np.asarray(PIL.Image.open("shoe.png").convert("L"))[None, ..., None])
    print(model.metadata.metadata["class_names"][probs.argmax()], probs.max())
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import numpy as np
from convflow.components import tasks
from convflow.components.serving import CHAMPION, CLASS_NAMES, MODEL_ARTIFACT, TASK
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec


def signature(model, task: tasks.Task) -> ModelSignature:
    """uint8 (-1, -1, -1, C) in; the task's outputs (classification: float32 (-1, classes)).

    The specs are unnamed on purpose: a named input makes pyfunc wrap arrays in a dict,
    which the exported SavedModel's ``serve`` endpoint rejects.
    """
    channels = model.inputs[0].shape[-1]
    dtype = np.dtype(str(model.inputs[0].dtype).replace("tf.", ""))
    # (dtype, shape) or, for a model with a dict of outputs, (dtype, shape, name).
    outputs = [TensorSpec(np.dtype(s[0]), s[1], *s[2:]) for s in task.output_specs(model)]
    return ModelSignature(
        inputs=Schema([TensorSpec(dtype, (-1, -1, -1, channels))]), outputs=Schema(outputs)
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


def log_serving_model(
    model, class_names: Sequence[str], task: tasks.Task, name: str = MODEL_ARTIFACT
):
    """Logs the served model to the active MLflow run; returns its ModelInfo."""
    # NOTE: input_example= makes mlflow 3.17 fail with FileNotFoundError for exported Keras
    # models; the explicit signature carries the same schema. The export prints a page of
    # endpoint details to stdout, which would bury the pipeline's own output.
    with contextlib.redirect_stdout(io.StringIO()):
        return mlflow.keras.log_model(
            model,
            name=name,
            save_exported_model=True,
            signature=signature(model, task),
            pip_requirements=pinned_requirements(),
            metadata={CLASS_NAMES: list(class_names), TASK: task.name},
        )


@contextlib.contextmanager
def tracking(uri: str | None):
    """Points MLflow's tracking and registry at ``uri`` inside the block (None: unchanged).

    MLflow keeps the URIs in module globals *and* exports them as environment variables for
    subprocesses; both are put back afterwards, so a block leaves no trace.
    """
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


def load_served(model_uri: str, trust: bool = False) -> tuple[Any, list[str]]:
    """(pyfunc model, class names) for a served model URI such as ``models:/name@champion``.

    The MLmodel is checked first (components/safe_load.py): a model convflow did not log is
    refused unless ``trust`` or CONVFLOW_TRUST_FOREIGN_MODELS=1.

    Raises:
        UnsafeModel: a foreign model (could run code) or one without a signature.
        ValueError: the model has no class names in its metadata (not logged by convflow).
        mlflow.exceptions.MlflowException: the URI does not resolve.
    """
    from convflow.components.safe_load import TRUST_ENV, check_model

    check_model(model_uri, trust or os.environ.get(TRUST_ENV) == "1")
    model = mlflow.pyfunc.load_model(model_uri)
    meta = model.metadata.metadata or {}
    classes = meta.get(CLASS_NAMES)
    if not classes:
        raise ValueError(
            f"{model_uri} has no class names in its metadata; was it logged by convflow?"
        )
    return model, list(classes)


def current_champion(model_name: str):
    """The ModelVersion under @champion, or None when the model or the alias does not exist.

    Raises:
        mlflow.exceptions.MlflowException: any other registry failure.
    """
    try:
        return MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as e:
        missing = e.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            e.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(e)
        )
        if missing:
            return None
        raise


def served_task(model) -> tasks.Task:
    """The task a loaded served model was logged for (classification for older models)."""
    meta = model.metadata.metadata or {}
    return tasks.get(meta.get(TASK, tasks.DEFAULT))


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
