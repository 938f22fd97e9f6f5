"""The tasks a pipeline can train for; see base.py for the :class:`Task` interface.

Each task module is imported here by name (not discovered), so a step's cache key, which
follows import statements, covers every task's code. Adding a task: a module next to
``classification.py``, one line in :data:`TASKS`, a pipeline definition and an ingest source.
"""

from __future__ import annotations

from convflow.components.tasks.base import EvalInputs, Evaluation, TargetFeature, Task, Window
from convflow.components.tasks.classification import Classification
from convflow.components.tasks.detection import Detection
from convflow.components.tasks.segmentation import Segmentation

DEFAULT = "classification"
TASKS: dict[str, Task] = {t.name: t for t in (Classification(), Segmentation(), Detection())}


def get(name: str) -> Task:
    """The task registered as ``name``.

    Raises:
        KeyError: unknown task; the message lists the known ones.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"Unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


__all__ = ["DEFAULT", "TASKS", "EvalInputs", "Evaluation", "TargetFeature", "Task", "Window", "get"]
