"""``convflow sweep SWEEP.yaml``: one pipeline run per point of a grid, under one sweep run.

A sweep file (``configs/sweeps/*.yaml``)::

    name: pooling                        # the sweep run's name (default: the file's stem)
    base: ../fashion_mnist_lenet.yaml    # the pipeline config, relative to the sweep file
    set: {train.epochs: 2}               # overrides every point shares (keys as ``--set``)
    grid:                                # every combination of these values ...
      train.model_kwargs.lenet5.pooling: [max, avg]
    points:                              # ... or (and) an explicit list of points
      - {train.model: lenet5}
    seeds: [0, 1, 2]                     # each point repeats with ``seed_key`` set to each
    seed_key: train.seed
    metrics: [train.accuracy, evaluate.accuracy]   # STEP.METRIC, compared in the table
    register: false                      # default: sweeps register no model

Each point is a normal ``convflow run`` through :func:`convflow.pipelines.runner.run`, so the
steps points share (ingest, preprocess for a model sweep) are cache hits, and a sweep that
was interrupted and is re-run resumes: its finished points are cache hits too. The points'
parent runs are nested (``mlflow.parentRunId``) under one sweep run, which gets the
comparison table and plots (:mod:`convflow.pipelines.sweep_report`).

``--max-parallel N`` runs up to N points at once, each in its own process
(:mod:`convflow.pipelines.sweep_parallel`). The artifact store lets runs proceed together and
guards each step key with a lock, so a step that several points share is computed once: the
first point computes it, the others wait for it and find a cache hit. The table is the same
as a sequential sweep's, rows in the points' order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from convflow.pipelines.config import ConfigError, read_yaml

SWEEP_ID_TAG = "convflow.sweep.id"
SWEEP_TAG = "convflow.sweep"
POINT_TAG = "convflow.sweep.point"
REGISTER_STEP = "register"
KEYS = ("name", "base", "set", "grid", "points", "seeds", "seed_key", "metrics", "register")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the swept knobs' values and the seed."""

    index: int
    knobs: tuple[tuple[str, Any], ...]  # (``section.key``, value), in the sweep file's order
    seed: int | None

    def overrides(self, spec: SweepSpec) -> list[str]:
        """``--set`` strings: the shared ones, then the knobs, then the seed (JSON is YAML)."""
        pairs = [*spec.common, *self.knobs]
        if self.seed is not None:
            pairs.append((spec.seed_key, self.seed))
        return [f"{k}={json.dumps(v)}" for k, v in pairs]

    def label(self) -> str:
        """``key=value ...`` for tables and logs."""
        parts = [f"{k}={_show(v)}" for k, v in self.knobs]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return " ".join(parts) or "(base)"


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file."""

    name: str
    base: Path
    common: tuple[tuple[str, Any], ...]
    knob_names: tuple[str, ...]
    points: tuple[Point, ...]
    seed_key: str
    metrics: tuple[str, ...]  # ``STEP.METRIC``
    register: bool
    source: str

    @property
    def sweep_id(self) -> str:
        """Same file contents -> same id: a re-run finds (and resumes) the same sweep run."""
        text = json.dumps(
            [str(self.base.resolve()), self.common, [dataclasses.astuple(p) for p in self.points]],
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"sweep {path}: {message}")


def _key(path: str, key: Any, where: str) -> str:
    if not isinstance(key, str) or "." not in key or not all(key.split(".")):
        raise _fail(path, f"{where} key {key!r}: expected SECTION.KEY, as in --set")
    return key


def _mapping(path: str, data: Mapping, field: str) -> dict[str, Any]:
    value = data.get(field) or {}
    if not isinstance(value, Mapping):
        raise _fail(path, f"{field}: expected a mapping of SECTION.KEY: value")
    return {_key(path, k, field): v for k, v in value.items()}


def _grid(path: str, data: Mapping) -> list[tuple[tuple[str, Any], ...]]:
    grid = _mapping(path, data, "grid")
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _fail(path, f"grid: {k}: expected a non-empty list of values")
    # product() of no lists is one empty combination: a sweep of points only has no grid point.
    combos = [tuple(zip(grid, vs, strict=True)) for vs in itertools.product(*grid.values())]
    combos = combos if grid else []
    points = data.get("points") or []
    if not isinstance(points, list):
        raise _fail(path, "points: expected a list of mappings SECTION.KEY: value")
    for i, p in enumerate(points):
        if not isinstance(p, Mapping) or not p:
            raise _fail(path, f"points[{i}]: expected a non-empty mapping SECTION.KEY: value")
        combos.append(tuple(_mapping(path, {"p": p}, "p").items()))
    if not grid and not points:
        raise _fail(path, "names no point: add grid: {SECTION.KEY: [values]} or points: [...]")
    return combos


def _seeds(path: str, data: Mapping) -> list[int | None]:
    seeds = data.get("seeds")
    if seeds is None:
        return [None]  # the base config's own seed
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise _fail(path, f"seeds: {seeds!r}: expected a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise _fail(path, f"seeds: {seeds!r}: a seed is repeated")
    return list(seeds)


def _metrics(path: str, data: Mapping) -> tuple[str, ...]:
    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise _fail(path, "metrics: expected a list of STEP.METRIC, e.g. [evaluate.accuracy]")
    return tuple(_key(path, m, "metrics") for m in metrics)


def load(path: str) -> SweepSpec:
    """Reads and validates a sweep file.

    Raises:
        ConfigError: a missing or unreadable file, an unknown key, a bad value (one line).
    """
    data = read_yaml(path)
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]!r}; expected one of {', '.join(KEYS)}")
    if not isinstance(data.get("base"), str) or not data["base"]:
        raise _fail(path, "base: expected the path of a pipeline config")
    base = Path(os.path.normpath(Path(path).parent / data["base"]))
    if not base.is_file():
        raise _fail(path, f"base: {data['base']!r}: no such file ({base})")
    register = data.get("register", False)
    if not isinstance(register, bool):
        raise _fail(path, f"register: {register!r}: expected true or false")
    seed_key = _key(path, data.get("seed_key", "train.seed"), "seed_key")
    combos, seeds = _grid(path, data), _seeds(path, data)
    knob_names = tuple(dict.fromkeys(k for combo in combos for k, _ in combo))
    if seed_key in knob_names and seeds != [None]:
        raise _fail(path, f"{seed_key} is both swept and the seed_key; drop it from seeds")
    points = [(combo, s) for combo in combos for s in seeds]
    return SweepSpec(
        name=str(data.get("name") or Path(path).stem),
        base=base,
        common=tuple(_mapping(path, data, "set").items()),
        knob_names=knob_names,
        points=tuple(Point(i, c, s) for i, (c, s) in enumerate(points)),
        seed_key=seed_key,
        metrics=_metrics(path, data),
        register=register,
        source=str(path),
    )


def dry_run(spec: SweepSpec, check: Callable[[list[str]], Any], out: TextIO) -> None:
    """Prints one line per point after checking each point's config (``check(overrides)``)."""
    print(f"sweep {spec.name}: {len(spec.points)} points of {spec.base}", file=out)
    for p in spec.points:
        check(p.overrides(spec))
        print(f"  {p.index + 1:>3}. {p.label()}", file=out)
    print(f"metrics: {', '.join(spec.metrics)}; register: {str(spec.register).lower()}", file=out)


def run_options(pipeline, spec: SweepSpec, base_opts, sweep_run_id: str, point: Point):
    """The runner options of one point: nested under the sweep run; no register step unless
    the sweep asks for it."""
    to_step = base_opts.to_step
    if not spec.register and REGISTER_STEP in pipeline.steps:
        dropped = {REGISTER_STEP} | pipeline.downstream(REGISTER_STEP)
        kept = [s for s in pipeline.order() if s not in dropped]
        to_step = kept[-1] if kept else None
    tags = {
        **base_opts.tags,
        "mlflow.parentRunId": sweep_run_id,
        SWEEP_TAG: spec.name,
        POINT_TAG: point.label(),
    }
    return dataclasses.replace(base_opts, to_step=to_step, tags=tags)


def point_metrics(store, pipeline, results, metrics: tuple[str, ...]) -> dict[str, float]:
    """``STEP.METRIC -> value`` from the published step records (the producing runs' own
    metrics, whether this invocation ran the step or found it cached)."""
    keys = {r.name: r.key for r in results if r.key and store.is_published(r.name, r.key)}
    out = {}
    for name in metrics:
        step, metric = name.split(".", 1)
        if step in keys:
            value = store.record(step, keys[step]).get("metrics", {}).get(metric)
            if value is not None:
                out[name] = float(value)
    return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class PointResult:
    """What one point's pipeline run gave: its parent run, step statuses and metrics."""

    point: Point
    run_id: str
    statuses: dict[str, str]
    metrics: dict[str, float]
    error: str = ""


Build = Callable[[list[str]], tuple[Any, Any]]  # overrides -> (Pipeline, Config)


def run_point(spec: SweepSpec, point: Point, pipeline, cfg, opts, sweep_run_id: str, out):
    """Runs one point's pipeline (nested under ``sweep_run_id``); returns its :class:`PointResult`.

    Raises:
        PipelineError, StoreLockedError, TrackingUnavailable: as :func:`runner.run`.
    """
    from convflow.pipelines import runner
    from convflow.pipelines.store import ArtifactStore

    point_opts = run_options(pipeline, spec, opts, sweep_run_id, point)
    results, run_id = runner.run(pipeline, cfg, point_opts, out=out)
    store = ArtifactStore(cfg.pipeline.artifact_root)
    failed = [r.error for r in results if r.status == runner.FAILED]
    return PointResult(
        point,
        run_id,
        {r.name: r.status for r in results},
        point_metrics(store, pipeline, results, spec.metrics),
        failed[0] if failed else "",
    )


def run_sweep(spec: SweepSpec, build: Build, opts, out: TextIO | None = None, max_parallel=1):
    """Runs every point of ``spec``; returns (point results in the points' order, sweep run id).

    Every point's config is built (and so checked) before the first one runs. A failed point
    does not stop the others; its row says why. ``max_parallel`` 1 runs the points one after
    another in this process; N > 1 runs up to N at once, each in a process of its own
    (:mod:`convflow.pipelines.sweep_parallel`; ``build`` must then be picklable), where a
    step that several points need is computed by one and is a cache hit for the others.

    Raises:
        ConfigError: a point whose config is invalid.
        PipelineError, StoreLockedError, TrackingUnavailable: as :func:`runner.run`.
        PointProcessDied: (N > 1) a point's process died (SIGKILL, out of memory).
    """
    from convflow.pipelines import sweep_report, tracking
    from convflow.pipelines.store import ArtifactStore

    out = out or sys.stdout
    built = [(p, *build(p.overrides(spec))) for p in spec.points]
    first_pipeline, first_cfg = built[0][1], built[0][2]
    uri, location = tracking.connect(opts.tracking_uri or first_cfg.pipeline.tracking_uri)
    opts = dataclasses.replace(opts, tracking_uri=uri)
    exp_id = tracking.experiment_id(first_pipeline.name, location)
    sweep_run_id = _sweep_run(exp_id, spec)
    folder = ArtifactStore(first_cfg.pipeline.artifact_root).root / "sweeps" / spec.sweep_id
    at_once = f", {max_parallel} at once" if max_parallel > 1 else ""
    log(f"▶ sweep {spec.name}: MLflow run {sweep_run_id}, {len(built)} points{at_once}")
    try:
        if max_parallel > 1:
            from convflow.pipelines import sweep_parallel

            rows = sweep_parallel.run_points(spec, build, opts, sweep_run_id, max_parallel, folder)
        else:
            rows = []
            for point, pipeline, cfg in built:
                log(f"▶ point {point.index + 1}/{len(built)}: {point.label()}")
                rows.append(run_point(spec, point, pipeline, cfg, opts, sweep_run_id, out))
    except BaseException:
        _end(sweep_run_id, "KILLED")
        if max_parallel > 1:  # the point processes are gone: close what they left RUNNING
            tracking.mark_orphans_killed(exp_id)
        raise
    files = sweep_report.write(spec, rows, folder)
    from mlflow import MlflowClient

    client = MlflowClient()
    for f in files:
        client.log_artifact(sweep_run_id, str(f))
    print(sweep_report.markdown(spec, rows), file=out)
    _end(sweep_run_id, "FAILED" if any(r.error for r in rows) else "FINISHED")
    return rows, sweep_run_id


def _sweep_run(exp_id: str, spec: SweepSpec) -> str:
    """The sweep's MLflow run: an unfinished one of the same sweep (a resume), else a new one."""
    from convflow.pipelines import tracking
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{SWEEP_ID_TAG}` = '{spec.sweep_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    tags = {SWEEP_ID_TAG: spec.sweep_id, SWEEP_TAG: spec.name, **tracking.process_tags()}
    if found and found[0].info.status != "FINISHED":
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        for k, v in tags.items():
            client.set_tag(run_id, k, v)
        return run_id
    run = client.create_run(exp_id, run_name=f"sweep-{spec.name}", tags=tags)
    client.log_param(run.info.run_id, "sweep_file", spec.source)
    client.log_param(run.info.run_id, "base", str(spec.base))
    client.log_param(run.info.run_id, "points", len(spec.points))
    return run.info.run_id


def _end(run_id: str, status: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_terminated(run_id, status=status)
