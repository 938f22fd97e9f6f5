"""Pipeline definitions, by template name.

Each module has ``TASK`` (the task name, components/tasks), ``COMPONENTS`` (step name ->
the step's light declaration) and ``create_pipeline(cfg)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from convflow.pipelines.config import ConfigError

TEMPLATES = {
    "image_classification": "convflow.pipelines.definitions.image_classification",
    "image_segmentation": "convflow.pipelines.definitions.image_segmentation",
    "object_detection": "convflow.pipelines.definitions.object_detection",
}


def get(template: str) -> ModuleType:
    if template not in TEMPLATES:
        raise ConfigError(
            f"pipeline.template: {template!r} is not allowed; expected one of {sorted(TEMPLATES)}"
        )
    return importlib.import_module(TEMPLATES[template])
