"""The train step: ``spec`` declares it (light); ``executor`` fits the model (Keras, tf.data)."""

from convflow.components.train.spec import AugmentParams, EarlyStoppingParams, TrainParams, train

MODEL_FILE = "model.keras"

__all__ = ["MODEL_FILE", "AugmentParams", "EarlyStoppingParams", "TrainParams", "train"]
