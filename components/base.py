"""The component contract: artifact types, how a component declares itself, and its context.

A step declares itself in a light ``spec.py`` with :func:`declare`: its typed inputs, typed
outputs, frozen params dataclass and the module of its executor, a function ``run(ctx)`` in
``executor.py`` that does the work and imports TensorFlow, Keras or Beam at its top. Reading
specs (the CLI, ``convflow validate``, cache keys) therefore never imports them; the runner
loads an executor only to run it. :func:`component` wraps a plain function instead (tests'
fake steps). A component works in the directories the runner hands it and knows nothing
about caching, publishing or MLflow runs; the runner (in ``pipelines/``) owns those, and
:func:`run_by_hand` does the same for tests, benchmarks and notebooks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Artifact types. Strings, so that artifact.json stays readable and tests can name them.
# Raw (ingest) and transformed (preprocess) examples are different types, so a step wired to
# the wrong one fails the DAG's type check; EXAMPLES is the untyped kind, for fake steps.
EXAMPLES = "Examples"
RAW_EXAMPLES = "RawExamples"
TRANSFORMED_EXAMPLES = "TransformedExamples"
STATISTICS = "Statistics"
MODEL = "Model"
EVALUATION = "Evaluation"
BLESSING = "Blessing"
REGISTRATION = "Registration"
ARTIFACT_TYPES = (
    EXAMPLES,
    RAW_EXAMPLES,
    TRANSFORMED_EXAMPLES,
    STATISTICS,
    MODEL,
    EVALUATION,
    BLESSING,
    REGISTRATION,
)

ARTIFACT_FILE = "artifact.json"
#: the verdict file of a Blessing artifact (written by evaluate, read by register).
BLESSING_FILE = "blessing.json"


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
        pipeline: pipeline-level facts a component may need (pipeline name, task, run id,
            config hash, git commit, registered model name, ...).
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

    @property
    def task(self):
        """The pipeline's :class:`~convflow.components.tasks.Task` (default: classification)."""
        from convflow.components import tasks  # light, but only steps that run need it

        return tasks.get(self.pipeline.get("task") or tasks.DEFAULT)

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
        """A tqdm progress bar on stderr (silent when show_progress is off)."""
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=not self.show_progress, leave=False)


@dataclass(frozen=True)
class Component:
    """A step's contract: name, typed inputs and outputs, params class, and where the work is.

    Attributes:
        name: the step's name (config section, store folder, MLflow run name).
        executor: the module holding ``run(ctx)``; the cache key hashes its source closure.
        inputs, outputs: name -> artifact type.
        params_cls: the frozen params dataclass (the config section's schema).
        key_facts: ``Context.pipeline`` facts that join the cache key (see :func:`declare`).
        check: ``check(params, task)`` -> None; config checks that ``convflow validate`` runs
            without executing anything (raises ValueError with a one-line message).
        fn: the work itself, for components made by :func:`component`.
    """

    name: str
    executor: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    params_cls: type
    key_facts: tuple[str, ...] = ()
    check: Callable[[Any, Any], None] | None = None
    fn: Callable[[Context], None] | None = None
    # source(params) -> {fingerprint parts} of the data outside the store the step reads;
    # it joins the cache key, so editing a source file re-runs the step.
    source: Callable[[Any], Mapping[str, Any]] | None = None
    # effect(outputs, pipeline facts) -> None while the step's external effect (a registered
    # version, its aliases) still exists, else the reason to run it again on a cache hit.
    effect: Callable[[Mapping[str, Artifact], Mapping[str, Any]], str | None] | None = None

    def load(self) -> Callable[[Context], None]:
        """The executor function (imports the executor module, with its heavy imports)."""
        if self.fn is not None:
            return self.fn
        return importlib.import_module(self.executor).run

    def __call__(self, ctx: Context) -> None:
        return self.load()(ctx)


def _check_contract(name, inputs, outputs, params) -> None:
    for kind in [*inputs.values(), *outputs.values()]:
        if kind not in ARTIFACT_TYPES:
            raise TypeError(f"{name}: unknown artifact type {kind!r}; expected {ARTIFACT_TYPES}")
    if not (dataclasses.is_dataclass(params) and params.__dataclass_params__.frozen):
        raise TypeError(f"{name}: params must be a frozen dataclass, got {params!r}")


def declare(
    *,
    name: str,
    executor: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    params: type,
    key_facts: tuple[str, ...] = (),
    check: Callable[[Any, Any], None] | None = None,
    source: Callable[[Any], Mapping[str, Any]] | None = None,
    effect: Callable[[Mapping[str, Artifact], Mapping[str, Any]], str | None] | None = None,
) -> Component:
    """Declares a step whose work is ``run(ctx)`` in the module ``executor``.

    ``key_facts`` names the ``Context.pipeline`` facts the step's result depends on (e.g.
    ``("model_name", "tracking_uri")`` for a step that talks to the registry); they join its
    cache key, so pointing the run at another registry re-runs it. ``source`` fingerprints
    the data the step reads from outside the store (see Component); ``effect`` checks on a
    cache hit that what the step wrote outside the store is still there. Both must stay
    light: the runner calls them without loading the executor.

    Raises:
        TypeError: an unknown artifact type, or params that are not a frozen dataclass.
    """
    _check_contract(name, inputs, outputs, params)
    return Component(
        name,
        executor,
        dict(inputs),
        dict(outputs),
        params,
        tuple(key_facts),
        check,
        source=source,
        effect=effect,
    )


def component(
    *,
    name: str,
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    params: type,
    key_facts: tuple[str, ...] = (),
    source: Callable[[Any], Mapping[str, Any]] | None = None,
    effect: Callable[[Mapping[str, Artifact], Mapping[str, Any]], str | None] | None = None,
) -> Callable[[Callable[[Context], None]], Component]:
    """Declares a component from a function: ``@component(name=..., inputs=..., ...)``.

    For small steps that have no heavy imports (tests' fake steps); the project's steps use
    :func:`declare` so that their declaration stays apart from their work.
    """
    _check_contract(name, inputs, outputs, params)

    def wrap(fn: Callable[[Context], None]) -> Component:
        return Component(
            name,
            fn.__module__,
            dict(inputs),
            dict(outputs),
            params,
            tuple(key_facts),
            fn=fn,
            source=source,
            effect=effect,
        )

    return wrap


def publish_by_hand(out: OutputArtifact, producer: str) -> Artifact:
    """Writes ``out``'s artifact.json (fingerprint over its files and properties); loads it."""
    digest = hashlib.sha256()
    for f in sorted(out.path.rglob("*")):
        if f.is_file() and f.name != ARTIFACT_FILE:
            digest.update(f.relative_to(out.path).as_posix().encode() + b"\0" + f.read_bytes())
    digest.update(json.dumps(out.properties, sort_keys=True, default=str).encode())
    meta = {
        "type": out.type,
        "fingerprint": digest.hexdigest(),
        "producer": producer,
        "properties": out.properties,
    }
    (out.path / ARTIFACT_FILE).write_text(json.dumps(meta, default=str))
    return Artifact.load(out.path)


def run_by_hand(
    comp: Component,
    root: str | os.PathLike,
    inputs: Mapping[str, Artifact],
    params: Any,
    pipeline: Mapping[str, Any] | None = None,
    show_progress: bool = False,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Artifact]:
    """Runs one component outside the runner (tests, bench/, notebooks); publishes its outputs.

    Outputs go to ``root/<output name>``, scratch to ``root/work``; nothing is cached and
    nothing is sent to MLflow (the tracker records nothing). ``metrics``, when given, receives
    the step's metrics (what the runner would log).

    Returns:
        Output name -> the published Artifact.
    """
    root = Path(root)
    outputs = {}
    for name, kind in comp.outputs.items():
        (root / name).mkdir(parents=True)
        outputs[name] = OutputArtifact(str(root / name), kind)
    (root / "work").mkdir(parents=True, exist_ok=True)  # the runner creates it, too
    ctx = Context(
        params=params,
        inputs=dict(inputs),
        outputs=outputs,
        work_dir=root / "work",
        pipeline=dict(pipeline or {}),
        show_progress=show_progress,
    )
    comp(ctx)
    if metrics is not None:
        metrics.update(ctx.metrics)
    return {name: publish_by_hand(out, comp.name) for name, out in outputs.items()}
