"""convflow's Keras model zoo: keras and keras.ops only, so it runs on TF, JAX and PyTorch."""

from convflow.models.registry import build, get_spec, list_models, register

__all__ = ["build", "get_spec", "list_models", "register"]
