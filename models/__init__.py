"""convflow's Keras model zoo: keras and keras.ops only, so it runs on TF, JAX and PyTorch.

- ``registry``: the leaf registry (``@register``, :class:`ModelSpec`); imports no model.
- ``zoo``: every family imported; ``build``, ``get_spec``, ``list_models``, ``describe``.
- ``catalog``: the zoo's metadata from catalog.json (parameter counts, builder arguments,
  first convolution and classifier names) without importing Keras, for the CLI and configs.

``convflow.models.build`` and friends are the zoo's, loaded on first use, so importing this
package (or its light modules) does not import Keras.
"""

from convflow.models.registry import KINDS, ModelSpec, register

_ZOO = ("build", "describe", "get_spec", "list_models")


def __getattr__(name: str):
    if name in _ZOO:
        # PEP 562: the zoo (Keras and every family) loads when a model is first asked for.
        from convflow.models import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'convflow.models' has no attribute {name!r}")


__all__ = ["KINDS", "ModelSpec", "build", "describe", "get_spec", "list_models", "register"]
