"""The validate_data step (between preprocess and train): data checks against @champion's."""

from convflow.components.validate_data.executor import validate_data
from convflow.components.validate_data.spec import Check, Params

__all__ = ["Check", "Params", "validate_data"]
