"""The validate_data step (between preprocess and train): data checks against @champion's.

``spec`` declares it (light); ``executor`` profiles the data and compares.
"""

from convflow.components.validate_data.spec import Check, Params, validate_data

__all__ = ["Check", "Params", "validate_data"]
