"""Image classification: ingest -> preprocess -> validate_data -> train -> evaluate -> register.

The steps are the same for every task; this definition picks the ``classification`` task
(components/tasks/classification.py), which the runner hands to each step.
"""

from __future__ import annotations

from convflow.pipelines.config import Config
from convflow.pipelines.dag import Pipeline
from convflow.pipelines.definitions.steps import COMPONENTS, wire

__all__ = ["COMPONENTS", "TASK", "create_pipeline"]
TASK = "classification"


def create_pipeline(cfg: Config) -> Pipeline:
    return wire(cfg, TASK)
