"""The blessing decision: thresholds, then "does not lose to the champion".

Pure functions over numbers, so the policy is tested without models or MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChampionResult:
    """The current champion as evaluated on the challenger's evaluation split.

    ``accuracy`` holds the task's blessing metric (accuracy for classification).
    """

    version: str
    accuracy: float
    model_uri: str


@dataclass(frozen=True)
class Blessing:
    """The verdict and every reason behind it (passing checks included)."""

    blessed: bool
    reasons: list[str] = field(default_factory=list)
    champion: ChampionResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    metrics: dict[str, float],
    *,
    min_accuracy: float,
    max_loss: float | None,
    champion: ChampionResult | None,
    tolerance: float,
    metric: str = "accuracy",
    compared: bool = True,
    threshold_name: str = "min_accuracy",
) -> Blessing:
    """Blesses when every threshold passes and the challenger does not lose to the champion.

    Args:
        metrics: the challenger's metrics; needs ``metric``, ``loss`` and, when there is a
            champion, ``serving_<metric>`` (measured the same way as the champion's).
        min_accuracy: smallest accepted value of ``metric``.
        max_loss: largest accepted loss, None for no limit.
        champion: the champion's result on the same split, None when there is none.
        tolerance: the challenger may trail the champion's ``metric`` by at most this much.
        metric: the task's blessing metric (higher is better).
        compared: False when comparing with the champion was turned off; the reasons say so.
        threshold_name: the setting that holds ``min_accuracy``, for the reasons' text.
    """
    ok, reasons = True, []
    acc, loss = metrics[metric], metrics["loss"]
    if acc >= min_accuracy:
        reasons.append(f"{metric} {acc:.4f} >= {threshold_name} {min_accuracy:.4f}")
    else:
        ok = False
        reasons.append(f"{metric} {acc:.4f} < {threshold_name} {min_accuracy:.4f}")
    if max_loss is not None:
        if loss <= max_loss:
            reasons.append(f"loss {loss:.4f} <= max_loss {max_loss:.4f}")
        else:
            ok = False
            reasons.append(f"loss {loss:.4f} > max_loss {max_loss:.4f}")
    if champion is None:
        reasons.append(
            "no champion yet: thresholds only"
            if compared
            else "thresholds only: evaluate.compare_with_champion=false"
        )
        return Blessing(ok, reasons, None)
    mine = metrics[f"serving_{metric}"]
    floor = champion.accuracy - tolerance
    vs = f"champion v{champion.version} {champion.accuracy:.4f} - tolerance {tolerance:.4f}"
    if mine >= floor:
        reasons.append(f"{metric} {mine:.4f} on the same split >= {vs}")
    else:
        ok = False
        reasons.append(f"{metric} {mine:.4f} on the same split < {vs}")
    return Blessing(ok, reasons, champion)
