"""The train step: params, input pipeline, runtime (precision, strategy) and the component."""

from convflow.components.train.component import MODEL_FILE, build_network, train
from convflow.components.train.params import AugmentParams, EarlyStoppingParams, TrainParams

__all__ = [
    "MODEL_FILE",
    "AugmentParams",
    "EarlyStoppingParams",
    "TrainParams",
    "build_network",
    "train",
]
