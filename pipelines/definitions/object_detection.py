"""Object detection: ingest -> preprocess -> validate_data -> train -> evaluate -> register.

The steps are the same for every task; this definition picks the ``detection`` task
(components/tasks/detection.py): boxes in the records, moved by crop and resize in Beam, YOLO
v1 targets and loss, COCO mAP by pycocotools, and a served model that returns boxes in the
input's pixels.
"""

from __future__ import annotations

from convflow.pipelines.config import Config
from convflow.pipelines.dag import Pipeline
from convflow.pipelines.definitions.steps import COMPONENTS, wire

__all__ = ["COMPONENTS", "TASK", "create_pipeline"]
TASK = "detection"


def create_pipeline(cfg: Config) -> Pipeline:
    return wire(cfg, TASK)
