"""The served model's preprocessing: the Beam job's transforms as Keras layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from convflow.components.preprocess.params import CROP, GCN, LCN, RESIZE, STANDARDIZE

if TYPE_CHECKING:
    import keras


def _layer(step: str, cfg: Mapping[str, Any]) -> keras.layers.Layer:
    from convflow.models.layers import contrast  # keras: imported when a model is built, not before

    if step == CROP:
        return contrast.CenterSquareCrop(name="square_crop")
    if step == RESIZE:
        return contrast.SquareResize(
            cfg["size"], cfg["interpolation"], cfg["antialias"], name="resize"
        )
    if step == GCN:
        return contrast.GlobalContrastNormalization(**cfg["gcn"], name="gcn")
    if step == LCN:
        return contrast.LocalContrastNormalization(**cfg["lcn"], name="lcn")
    if step == STANDARDIZE:
        return contrast.ChannelStandardization(
            cfg["channel_mean"], cfg["channel_std"], name="standardize"
        )
    raise ValueError(f"Unknown preprocess step {step!r}; expected one of {CROP, RESIZE, GCN, LCN}")


def preprocessing_layers(properties: Mapping[str, Any]) -> list[keras.layers.Layer]:
    """The layers, in order, that redo what the Beam job did (scaling first).

    Args:
        properties: the ``properties`` of the preprocess component's output Examples artifact.
    """
    if "preprocess" not in properties:
        raise ValueError(
            "These Examples have no 'preprocess' property; pass the output of the preprocess "
            f"step, not the ingest step (keys: {sorted(properties)})"
        )
    from convflow.models.layers import contrast

    cfg = properties["preprocess"]
    return [contrast.UnitScale(name="scale"), *(_layer(s, cfg) for s in cfg["steps"])]


def build_preprocessor(properties: Mapping[str, Any]) -> keras.Model:
    """A model from raw images ``(batch, H, W, C)`` of any H, W to what the Beam job wrote.

    Args:
        properties: the output Examples artifact's properties (``preprocess`` holds the steps,
            their settings and the training-split channel statistics).

    Returns:
        A functional ``keras.Model`` named ``preprocessor``; its input dtype is the ingest
        dtype (uint8), its output float32 ``(batch, size, size, C)``.
    """
    import keras

    layers = preprocessing_layers(properties)
    cfg = properties["preprocess"]
    inputs = keras.Input((None, None, cfg["channels"]), dtype=cfg["input_dtype"], name="image")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name="preprocessor")
