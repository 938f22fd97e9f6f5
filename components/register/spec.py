"""The register step's declaration: the ``register:`` section and its contract.

Register logs the served model (raw images in, the task's answers out) to MLflow, registers a
version under ``pipeline.model_name`` with lineage tags, gives it ``@challenger`` and, when
blessed, ``@champion``. The work is in executor.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import (
    BLESSING,
    BLESSING_FILE,
    MODEL,
    REGISTRATION,
    TRANSFORMED_EXAMPLES,
    declare,
    param,
)
from convflow.components.registration import REGISTRATION_FILE, effect_gone


@dataclass(frozen=True)
class RegisterParams:
    """Resolved ``register:`` section."""

    description: str = param("", help="text for every new model version")
    await_registration_s: int = param(
        300, help="how long to wait for the version to become READY", min=1
    )
    probabilities: bool = param(
        False,
        help="segmentation: the served model also returns per-pixel probabilities (a dict "
        "output {class_map, probabilities})",
    )


def check(params: RegisterParams, task) -> None:
    """``register.probabilities`` only for a task whose served model can add them.

    Raises:
        ValueError: one line naming the key.
    """
    if params.probabilities and task is not None and not task.optional_probabilities:
        raise ValueError(
            f"register.probabilities=true: the {task.name} task's served model has no "
            "per-pixel probabilities to add; remove register.probabilities"
        )


register = declare(
    name="register",
    executor="convflow.components.register.executor",
    inputs={"model": MODEL, "examples": TRANSFORMED_EXAMPLES, "blessing": BLESSING},
    outputs={"registration": REGISTRATION},
    params=RegisterParams,
    key_facts=("model_name", "tracking_uri"),
    effect=effect_gone,
    check=check,
)

__all__ = ["BLESSING_FILE", "REGISTRATION_FILE", "RegisterParams", "register"]
