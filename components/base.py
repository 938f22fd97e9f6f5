"""The component contract: artifact types, how a component declares itself, and its context.

A component is a plain function ``fn(ctx: Context) -> None`` wrapped by :func:`component`,
which states its typed inputs, typed outputs and params dataclass in one place. It works in
the directories the runner hands it and knows nothing about caching, publishing or MLflow
runs; the runner (in ``pipelines/``) owns those.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Artifact types. Strings, so that artifact.json stays readable and tests can name them.
EXAMPLES = "Examples"
STATISTICS = "Statistics"
MODEL = "Model"
EVALUATION = "Evaluation"
BLESSING = "Blessing"
REGISTRATION = "Registration"
ARTIFACT_TYPES = (EXAMPLES, STATISTICS, MODEL, EVALUATION, BLESSING, REGISTRATION)

ARTIFACT_FILE = "artifact.json"


class ComponentError(Exception):
    """A failure the user can act on; the runner prints its message as one line."""


def param(default: Any = dataclasses.MISSING, *, help: str = "", **limits: Any) -> Any:
    """A params-dataclass field with validation limits the config loader enforces.

    Args:
        default: the default value (lists and dicts: pass ``default_factory`` in limits).
        help: one line shown in config errors.
        **limits: ``min``, ``max`` (inclusive), ``min_exclusive``, ``choices`` (allowed
            values; for a list field, allowed items), ``default_factory``.

    Returns:
        A ``dataclasses.field`` carrying the limits in its metadata.
    """
    factory = limits.pop("default_factory", dataclasses.MISSING)
    unknown = set(limits) - {"min", "max", "min_exclusive", "choices"}
    if unknown:
        raise TypeError(f"param() got unknown limits {sorted(unknown)}")
    meta = {"help": help, **limits}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Artifact:
    """A published artifact as a consumer sees it: a directory plus its artifact.json."""

    uri: str
    type: str
    fingerprint: str
    producer: str
    properties: Mapping[str, Any]

    @property
    def path(self) -> Path:
        return Path(self.uri)

    @classmethod
    def load(cls, uri: str | os.PathLike) -> Artifact:
        meta = json.loads((Path(uri) / ARTIFACT_FILE).read_text())
        return cls(
            uri=str(uri),
            type=meta["type"],
            fingerprint=meta["fingerprint"],
            producer=meta["producer"],
            properties=meta.get("properties", {}),
        )


@dataclass
class OutputArtifact:
    """An artifact being written: the component fills ``path`` and ``properties``."""

    uri: str
    type: str
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.uri)


class Tracker(Protocol):
    """What a component may record about its run (the runner backs it with MLflow)."""

    run_id: str | None
    tracking_uri: str

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class NullTracker:
    """Records nothing; for running a component outside the runner (tests, notebooks)."""

    run_id = None
    tracking_uri = ""

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_artifact(self, path, artifact_path=None):
        pass

    def set_tags(self, tags):
        pass


@dataclass
class Context:
    """Everything a component run gets from the runner.

    Attributes:
        params: the component's params dataclass, resolved and validated.
        inputs: input name -> published artifact.
        outputs: output name -> artifact to write (its directory exists and is empty).
        work_dir: scratch that survives a crash of this step with the same cache key, for
            checkpoints; the runner deletes it after the outputs are published.
        tracker: where metrics, params and files go (the step's nested MLflow run).
        pipeline: pipeline-level facts a component may need (pipeline name, run id, config
            hash, git commit, registered model name, ...).
        metrics: final metrics of the step; the runner stores them with the artifacts, so a
            cache hit can show them again.
    """

    params: Any
    inputs: dict[str, Artifact]
    outputs: dict[str, OutputArtifact]
    work_dir: Path
    tracker: Tracker = field(default_factory=NullTracker)
    pipeline: Mapping[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    show_progress: bool = True

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Sends metrics to the tracker; final values (step None) are kept for cache hits."""
        clean = {k: float(v) for k, v in metrics.items()}
        self.tracker.log_metrics(clean, step=step)
        if step is None:
            self.metrics.update(clean)

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
        """A tqdm progress bar on stderr (silent when show_progress is off)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=not self.show_progress, leave=False)


@dataclass(frozen=True)
class Component:
    """A step's contract: name, typed inputs and outputs, params class, and the work."""

    name: str
    fn: Callable[[Context], None]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    params_cls: type
    key_facts: tuple[str, ...] = ()

    def __call__(self, ctx: Context) -> None:
        return self.fn(ctx)


def component(
    *,
    name: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    params: type,
    key_facts: tuple[str, ...] = (),
) -> Callable[[Callable[[Context], None]], Component]:
    """Declares a component: ``@component(name=..., inputs=..., outputs=..., params=...)``.

    ``key_facts`` names the ``Context.pipeline`` facts the step's result depends on (e.g.
    ``("model_name", "tracking_uri")`` for a step that talks to the registry); they join its
    cache key, so pointing the run at another registry re-runs it.
    """
    for kind in [*inputs.values(), *outputs.values()]:
        if kind not in ARTIFACT_TYPES:
            raise TypeError(f"{name}: unknown artifact type {kind!r}; expected {ARTIFACT_TYPES}")
    if not (dataclasses.is_dataclass(params) and params.__dataclass_params__.frozen):
        raise TypeError(f"{name}: params must be a frozen dataclass, got {params!r}")

    def wrap(fn: Callable[[Context], None]) -> Component:
        return Component(name, fn, dict(inputs), dict(outputs), params, tuple(key_facts))

    return wrap
