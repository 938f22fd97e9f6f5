"""The validate_data step's params (config section ``validate_data``): checks before train.

TFDV's anomaly check, made for images: the new data's statistics are compared with those
of the data the current ``@champion`` was trained on, and with fixed thresholds. Each check
has a ``limit`` and an ``action``: ``fail`` stops the run before training with one line
naming the check, the old and the new value; ``warn`` logs it to the run and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import (
    RAW_EXAMPLES,
    STATISTICS,
    TRANSFORMED_EXAMPLES,
    declare,
    param,
)

ACTIONS = ("warn", "fail")


# check -> (limit, action) when the config does not say; see Params for each measure.
DEFAULTS = {
    "label_distribution": (0.05, "fail"),
    "channel_mean": (0.25, "fail"),
    "channel_std": (0.25, "fail"),
    "image_size": (0.1, "warn"),
    "rejected_share": (0.01, "warn"),
    "min_class_share": (0.0, "warn"),
}


@dataclass(frozen=True)
class Check:
    """One check: drift beyond ``limit`` -> ``action``; None: the check's default (DEFAULTS)."""

    limit: float | None = param(None, help="largest allowed value of the measure", min=0.0)
    action: str | None = param(None, choices=ACTIONS)


@dataclass(frozen=True)
class Params:
    """Resolved ``validate_data:`` section. Measures (on ``split``):

    Attributes:
        split: the split whose statistics are checked (the one training reads).
        label_distribution: vs champion's data: the largest change of one class's share of
            the examples (|new share - old share|; a class that vanished moves by its share).
        channel_mean: vs champion's data: the largest change of a channel's mean pixel value,
            in units of the champion data's std of that channel (images brightened or dimmed).
        channel_std: vs champion's data: the largest relative change of a channel's std
            (|new / old - 1|; contrast).
        image_size: vs champion's data: total variation distance between the (H, W, C)
            distributions of the raw images (0: same sizes in the same shares, 1: disjoint).
        rejected_share: threshold: records ingest and preprocess rejected, as a share of all.
        min_class_share: threshold: the smallest share of a class, as ``limit`` (a class at
            or below it, e.g. missing, trips the check), also without a champion to compare.
    """

    split: str = param("train", choices=("train", "validation", "test"))
    label_distribution: Check = param(default_factory=Check)
    channel_mean: Check = param(default_factory=Check)
    channel_std: Check = param(default_factory=Check)
    image_size: Check = param(default_factory=Check)
    rejected_share: Check = param(default_factory=Check)
    min_class_share: Check = param(default_factory=Check)

    def rule(self, check: str) -> tuple[float, str]:
        """(limit, action) of ``check``, the config's values over DEFAULTS."""
        given: Check = getattr(self, check)
        limit, action = DEFAULTS[check]
        return (
            limit if given.limit is None else given.limit,
            action if given.action is None else given.action,
        )


validate_data = declare(
    name="validate_data",
    executor="convflow.components.validate_data.executor",
    inputs={
        "raw_examples": RAW_EXAMPLES,
        "examples": TRANSFORMED_EXAMPLES,
        "statistics": STATISTICS,
    },
    outputs={"report": STATISTICS},
    params=Params,
    key_facts=("model_name", "tracking_uri"),
)
