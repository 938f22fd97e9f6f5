"""The evaluate step's declaration: the ``evaluate:`` section and its contract.

Evaluate scores the trained network and the served model on ``evaluate.split`` (the task's
metrics and plots) and decides the blessing: thresholds, then "does not lose to the champion"
on the task's blessing metric. The work is in executor.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import (
    BLESSING,
    EVALUATION,
    MODEL,
    RAW_EXAMPLES,
    TRANSFORMED_EXAMPLES,
    declare,
    param,
)
from convflow.components.examples.io import SPLITS

METRICS_FILE, PER_CLASS_FILE = "metrics.json", "per_class.json"
# The threshold setting of each task's blessing metric.
THRESHOLDS = {"accuracy": "min_accuracy", "mean_iou": "min_miou", "map50": "min_map50"}


@dataclass(frozen=True)
class EvaluateParams:
    """Resolved ``evaluate:`` section."""

    split: str = param("test", help="split to evaluate on", choices=SPLITS)
    top_k: int = param(3, help="k of the top-k accuracy", min=1)
    batch_size: int = param(1024, help="evaluation batch size", min=1)
    min_accuracy: float = param(0.0, help="bless only at or above this accuracy", min=0.0, max=1.0)
    min_miou: float = param(
        0.0, help="segmentation: bless only at or above this mean IoU", min=0.0, max=1.0
    )
    min_map50: float = param(
        0.0, help="detection: bless only at or above this mAP@0.5", min=0.0, max=1.0
    )
    score_threshold: float = param(
        0.2, help="detection: the served model keeps boxes scoring at least this", min=0.0,
        max=1.0,
    )  # fmt: skip
    iou_threshold: float = param(
        0.5, help="detection: NMS drops same-class boxes overlapping more", min=0.0, max=1.0
    )
    max_detections: int = param(100, help="detection: boxes per image, served", min=1)
    max_loss: float | None = param(None, help="bless only at or below this loss", min=0.0)
    compare_with_champion: bool = param(True, help="also require not losing to @champion")
    champion_tolerance: float = param(
        0.0,
        help="the challenger may trail the champion's accuracy by this much",
        min=0.0,
        max=1.0,
    )
    num_misclassified: int = param(25, help="examples in misclassified.png", min=0, max=100)


evaluate = declare(
    name="evaluate",
    executor="convflow.components.evaluate.executor",
    inputs={"model": MODEL, "examples": TRANSFORMED_EXAMPLES, "raw_examples": RAW_EXAMPLES},
    outputs={"evaluation": EVALUATION, "blessing": BLESSING},
    params=EvaluateParams,
    key_facts=("model_name", "tracking_uri"),
)
