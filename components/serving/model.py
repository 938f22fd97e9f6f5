"""The served model: one Keras graph, raw image in, the task's outputs out::

    uint8 (batch, H, W, C), any H and W
      -> preprocessor (the transform table's layers, settings from the Examples' TransformInfo)
      -> trained network (float32 logits)
      -> the task's post-processing (classification: softmax probabilities)

So a consumer sends raw images and gets answers: the Beam job's preprocessing travels inside
the model (tests check the two agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import convflow.models.zoo  # noqa: F401 - registers the zoo's custom layers for deserialization
import keras
from convflow.components import transforms
from convflow.components.base import Artifact
from convflow.components.examples import ExamplesInfo, TransformInfo
from convflow.components.tasks import Task


def _transform_info(source: ExamplesInfo | TransformInfo | Mapping[str, Any]) -> TransformInfo:
    if isinstance(source, TransformInfo):
        return source
    info = source if isinstance(source, ExamplesInfo) else ExamplesInfo.from_properties(source)
    if info.transform is None:
        raise ValueError(
            "These Examples have no transform info; pass the output of the preprocess step, "
            "not the ingest step"
        )
    return info.transform


def preprocessing_layers(source) -> list[keras.layers.Layer]:
    """The layers, in order, that redo what the Beam job did (scaling first).

    Args:
        source: the transformed Examples' ExamplesInfo, TransformInfo or artifact properties.

    Raises:
        ValueError: raw Examples (no transform info).
    """
    transform = _transform_info(source)
    names = (transforms.SCALE, *transform.steps)
    return [transforms.resolve(n, transform.settings_for(n))[1] for n in names]


def build_preprocessor(source) -> keras.Model:
    """A model from raw images ``(batch, H, W, C)`` of any H, W to what the Beam job wrote.

    Args:
        source: as for :func:`preprocessing_layers`.

    Returns:
        A functional ``keras.Model`` named ``preprocessor``; its input dtype is the ingest
        dtype (uint8), its output float32 ``(batch, size, size, C)``.
    """
    transform = _transform_info(source)
    inputs = keras.Input(
        (None, None, transform.channels), dtype=transform.input_dtype, name="image"
    )
    x = inputs
    for layer in preprocessing_layers(transform):
        x = layer(x)
    return keras.Model(inputs, x, name="preprocessor")


def build_serving_model(
    preprocessor, network, task: Task, transform: TransformInfo | None = None, settings=None
):
    """Raw uint8 images -> the task's served outputs: preprocessor + network + head.

    ``settings`` are the task's serving settings (:meth:`Task.serving_settings`: detection's
    NMS thresholds), passed on to :meth:`Task.serving_outputs` when given.
    """
    channels = preprocessor.inputs[0].shape[-1]
    inputs = keras.Input((None, None, channels), dtype=preprocessor.inputs[0].dtype, name="image")
    # Some backend kernels (TF's convolutions) fail on an empty batch: one blank image is
    # appended and its row dropped from every output, so N=0 gives empty outputs of the
    # right shape.
    padded = keras.layers.Lambda(_append_blank, name="append_blank")(inputs)
    logits = network(preprocessor(padded))
    extra = {} if settings is None else {"settings": settings}
    outputs = task.serving_outputs(padded, logits, transform, **extra)
    outputs = keras.tree.map_structure(keras.layers.Lambda(_drop_last), outputs)
    return keras.Model(inputs, outputs, name="serving")


def _append_blank(images):
    shape = keras.ops.shape(images)
    blank = keras.ops.zeros((1, shape[1], shape[2], shape[3]), images.dtype)
    return keras.ops.concatenate([images, blank])


def _drop_last(batch):
    return batch[: keras.ops.shape(batch)[0] - 1]


def load_network(model_artifact: Artifact):
    """The trained network (logits) from a Model artifact, without its optimizer."""
    return keras.saving.load_model(
        model_artifact.path / model_artifact.properties.get("file", "model.keras"), compile=False
    )


def serving_model_for(
    model_artifact: Artifact, examples_artifact: Artifact, task: Task, settings=None
):
    """The served model for a Model artifact trained on transformed ``examples_artifact``."""
    transform = _transform_info(ExamplesInfo.of(examples_artifact))
    preprocessor = build_preprocessor(transform)
    network = load_network(model_artifact)
    return build_serving_model(preprocessor, network, task, transform, settings)
