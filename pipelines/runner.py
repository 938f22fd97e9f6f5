"""The local DAG runner: cache, atomic publish, lock, MLflow runs, summary table."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from convflow.components import registration, tasks
from convflow.components.base import ComponentError, Context, OutputArtifact
from convflow.pipelines import dashboard, tracking, triggers, why
from convflow.pipelines.cache import digest, key_parts, package_versions, source_closure
from convflow.pipelines.config import Config
from convflow.pipelines.dag import Pipeline, PipelineError
from convflow.pipelines.errors import environment_error
from convflow.pipelines.store import ArtifactStore, StoreLockedError

RAN, CACHED, FAILED, NOT_RUN = "ran", "cached", "failed", "not run"


@dataclass
class StepResult:
    name: str
    status: str
    duration: float = 0.0
    key: str = ""
    error: str = ""


@dataclass
class RunOptions:
    force: bool = False
    from_step: str | None = None
    to_step: str | None = None
    tracking_uri: str | None = None
    wait: float = 0.0
    show_progress: bool = True
    only: str | None = None  # exactly this step, inputs from the store (orchestrators)
    trigger: str = "manual"  # manual | schedule | data | airflow: the parent run's tag
    tags: dict[str, str] = dataclasses.field(default_factory=dict)  # more parent-run tags
    run_group: str | None = None  # steps run one by one (Airflow) share this parent run


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def selection(pipeline: Pipeline, opts: RunOptions) -> tuple[list[str], set[str]]:
    """(steps selected by --from/--to/--only, steps forced to run by --force/--from)."""
    if opts.only:  # a single step: the same selection as --from STEP --to STEP
        selected = pipeline.select(opts.only, opts.only)
    else:
        selected = pipeline.select(opts.from_step, opts.to_step)
    forced = set(selected) if opts.force else set()
    if opts.from_step:
        forced |= {
            s for s in selected if s == opts.from_step or s in pipeline.downstream(opts.from_step)
        }
    return selected, forced


def run(pipeline: Pipeline, cfg: Config, opts: RunOptions, out: TextIO | None = None):
    """Runs the selected steps of ``pipeline``; returns (results, parent MLflow run id)."""
    import mlflow
    from mlflow import MlflowClient

    out = out or sys.stdout
    selected, forced = selection(pipeline, opts)
    source_closure.cache_clear()  # sources may have changed since the last run in this process
    store = ArtifactStore(cfg.pipeline.artifact_root)
    # Runs go at once and claim() guards each key; one that redoes published steps (--force,
    # --from) swaps directories other runs may be reading, so it has the store to itself.
    with store.lock(opts.wait, shared=not forced):
        store.sweep()
        uri, artifact_location = tracking.connect(opts.tracking_uri or cfg.pipeline.tracking_uri)
        exp_id = tracking.experiment_id(pipeline.name, artifact_location)
        dashboard.prefer_model_training_view(MlflowClient(), exp_id)
        tracking.mark_orphans_killed(exp_id)
        registration.finalize_pending_models(exp_id)
        versions = package_versions()
        facts = {
            "pipeline_name": pipeline.name,
            "config_hash": cfg.hash,
            "git_commit": git_commit(),
            "tracking_uri": uri,
            "artifact_root": str(store.root),
            "model_name": cfg.pipeline.model_name,
            "experiment_id": exp_id,
            "task": pipeline.task,
            "trigger": opts.trigger,  # recorded with every alias move (register)
        }
        run_name = dashboard.run_name(pipeline.name, cfg.sections, cfg.hash)
        with triggers.parent_run(exp_id, run_name, opts.run_group) as parent:
            facts["run_id"] = parent.info.run_id
            _log_parent(cfg, facts, versions, store, parent.info.run_id)
            mlflow.set_tags(triggers.trigger_tags(opts.trigger, opts.tags))
            # First thing a scheduler reads, so even a run stopped mid-way is named in its log.
            started = f"▶ MLflow run {parent.info.run_id} ({opts.trigger})"
            print(started, file=sys.stderr, flush=True)
            try:
                results = _run_steps(pipeline, opts, store, selected, forced, facts, versions)
            except StoreLockedError as e:
                _drop_if_idle(e, parent.info.run_id, opts)
                raise
            headline = tasks.get(pipeline.task).blessing_metric  # accuracy, mIoU, mAP@0.5
            head = dashboard.summarize(
                MlflowClient(), parent.info.run_id, store, results, cfg.sections, headline
            )
            failed = [r for r in results if r.status == FAILED]
            mlflow.set_tag("convflow.summary", triggers.summary(parent, results))
            if failed:
                mlflow.set_tag("error", failed[0].error[:5000])
                mlflow.end_run(status="FAILED")
    print_summary(results, out)
    print(dashboard.result_line(head, uri, exp_id), file=out)
    return results, facts["run_id"]


def _drop_if_idle(error: StoreLockedError, run_id: str, opts: RunOptions) -> None:
    """A run stopped by another run's key lock before it ran any step leaves no row.

    Two overlapping runs of one config (a cron tick while the last one still trains) meet
    at their first step; the second has produced nothing, so its parent run is ended KILLED
    and deleted (MLflow keeps it among deleted runs) instead of a FAILED row per tick. A
    run group's parent (Airflow: one parent for the DAG run's steps) holds other steps' runs
    and stays.
    """
    import mlflow
    from mlflow import MlflowClient

    if opts.run_group or error.ran_before:
        return
    mlflow.end_run(status="KILLED")
    MlflowClient().delete_run(run_id)


def _log_parent(cfg, facts, versions, store, run_id):
    import mlflow

    run_dir = store.root / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    mlflow.log_artifact(str(run_dir / "config.yaml"))
    mlflow.log_dict(versions, "package_versions.json")
    mlflow.set_tags(
        {
            **tracking.process_tags(),
            "config_hash": facts["config_hash"],
            "git_commit": facts["git_commit"],
            "config_source": cfg.source,
            **{f"version.{k}": v for k, v in versions.items()},
        }
    )
    mlflow.log_params(tracking.flatten({"pipeline": dataclasses.asdict(cfg.pipeline)}))


def step_parts(step, inputs, versions, facts) -> dict:
    """The key parts of ``step`` with these inputs (see cache.key_parts)."""
    source = step.component.source(step.params) if step.component.source else None
    return key_parts(
        step.component.name,
        step.component.executor,
        step.params,
        {k: a.fingerprint for k, a in inputs.items()},
        versions,
        {f: facts[f] for f in ("task", *step.component.key_facts)},
        source,
    )


def effect_gone(step, store, key, facts) -> str | None:
    """Why a published step's external effect no longer holds (None: it holds)."""
    if step.component.effect is None:
        return None
    return step.component.effect(store.outputs(step.name, key), facts)


def _run_steps(pipeline, opts, store, selected, forced, facts, versions):
    results: list[StepResult] = []
    published: dict[str, dict] = {}  # step -> {output name: Artifact}
    for name in pipeline.order():
        step = pipeline.steps[name]
        if name not in selected and not (pipeline.downstream(name) & set(selected)):
            results.append(StepResult(name, NOT_RUN))
            continue
        inputs = {k: published[ref.step][ref.output] for k, ref in step.inputs.items()}
        parts = step_parts(step, inputs, versions, facts)
        key = digest(parts)
        if name not in selected:  # upstream of --from/--only: must already exist
            if not store.is_published(name, key):
                raise PipelineError(triggers.missing_upstream(pipeline, opts, name))
            published[name] = store.outputs(name, key)
            results.append(StepResult(name, NOT_RUN, key=key))
            continue
        cached, gone = _hit_or_gone(store, step, key, facts, opts, name in forced, results)
        if cached:
            published[name] = store.outputs(name, key)
            results.append(_record_hit(store, step, key))
            why.remember(store.root, name, key, parts)
            continue
        reason = miss_reason(pipeline, step, store, parts, forced, opts, gone)
        result, outputs = _execute(store, step, key, inputs, facts, opts, parts, reason)
        results.append(result)
        if result.status == FAILED:
            done = {r.name for r in results}
            results += [StepResult(n, NOT_RUN) for n in pipeline.order() if n not in done]
            break
        why.remember(store.root, name, key, parts)
        published[name] = outputs
    return results


def _hit_or_gone(store, step, key, facts, opts, force, results) -> tuple[bool, str | None]:
    """(a cache hit?, why its external effect is gone); unless a hit, the key is claimed."""
    _claim(store, step.name, key, opts, force, results)  # a concurrent run's: wait for it
    if force or not store.is_published(step.name, key):
        return False, None
    gone = effect_gone(step, store, key, facts)
    if gone is not None:
        _claim(store, step.name, key, opts, True, results)  # redone under the key's lock too
        gone = effect_gone(step, store, key, facts)  # a run we waited for may have redone it
        if gone is None:
            store.release(step.name, key)
    return gone is None, gone


def _claim(store, name, key, opts, force, results) -> None:
    """store.claim; a StoreLockedError notes whether this run had run a step before it."""
    try:
        store.claim(name, key, opts.wait, force=force)
    except StoreLockedError as e:
        e.ran_before = any(r.status == RAN for r in results)
        raise


def miss_reason(pipeline, step, store, parts, forced, opts, gone) -> str:
    """One line: why ``step`` runs (see pipelines/why.py)."""
    if gone:
        return f"its external effect is gone: {gone}"
    if step.name in forced:
        return "--force" if opts.force else f"--from {opts.from_step}"
    upstream = {k: ref.step for k, ref in step.inputs.items()}
    return why.explain(why.previous(store.root, step.name), parts, upstream)


def _nested_run(step, key, cache):
    import mlflow

    parent = mlflow.active_run()
    # Born with its host and pid tags, as the parent is: a signal between creating the run
    # and tagging it would leave a RUNNING run that mark_orphans_killed cannot attribute.
    run = mlflow.start_run(
        run_name=step.name,
        nested=True,
        experiment_id=parent.info.experiment_id,
        log_system_metrics=True,  # CPU, memory (and GPU) through MLflow's own monitor
        tags={
            "cache": cache,
            "cache_key": key,
            "component": step.component.name,
            **tracking.process_tags(),
        },
    )
    mlflow.log_params(tracking.flatten(dataclasses.asdict(step.params)))
    return run


@contextlib.contextmanager
def _sigint_noted():
    """Yields ``{"seen": bool}``, set when SIGINT arrives inside the block.

    SIGINT raises KeyboardInterrupt, but a library may turn it into an error of its own (a
    cleanup in a ``finally`` that fails on the half-done state, a runtime that reports the
    interrupt as an error): the step was still stopped (KILLED), not broken (FAILED).
    """
    seen = {"seen": False}
    previous = signal.getsignal(signal.SIGINT)

    def note(signum, frame):
        seen["seen"] = True
        previous(signum, frame)  # Python's default handler raises KeyboardInterrupt

    if not callable(previous):  # ignored, or the OS default: leave it alone
        yield seen
        return
    try:
        signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main thread: the signal goes to the main thread anyway
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _record_hit(store, step, key) -> StepResult:
    # No nested run: a hit would copy the producer's metrics into the charts. The parent
    # names the producing run instead (dashboard.cache_tags).
    return StepResult(step.name, CACHED, 0.0, key)


def _execute(store, step, key, inputs, facts, opts, parts, reason) -> tuple[StepResult, dict]:
    import mlflow

    run = _nested_run(step, key, "miss")
    mlflow.set_tag("cache_reason", reason[:5000])
    print(f"▶ {step.name}: running ({reason})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    tmp = None
    with _sigint_noted() as sigint:
        try:
            tmp = store.begin(step.name, key)
            outputs = {}
            for oname, otype in step.component.outputs.items():
                (tmp / oname).mkdir()
                outputs[oname] = OutputArtifact(str(tmp / oname), otype)
            work_dir = store.work_dir(step.name, key)
            work_dir.mkdir(parents=True, exist_ok=True)
            ctx = Context(
                params=step.params,
                inputs=inputs,
                outputs=outputs,
                work_dir=work_dir,
                tracker=tracking.MlflowTracker(run.info.run_id, facts["tracking_uri"]),
                pipeline={**facts, "step_run_id": run.info.run_id},
                show_progress=opts.show_progress,
            )
            step.component(ctx)
            ctx.tracker.flush()  # metrics kept back while the server was away
            duration = time.perf_counter() - t0
            record = _step_record(step, ctx, parts, reason, duration, run.info.run_id)
            published = store.publish(step.name, key, tmp, outputs, record)
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            raise
        except Exception as e:
            if sigint["seen"]:  # the interrupt, turned into another error by a library
                mlflow.end_run(status="KILLED")
                raise KeyboardInterrupt(f"{step.name} interrupted") from e
            message, trace = _one_line(step.name, e, store, facts["run_id"])
            mlflow.set_tag("error", message[:5000])
            if trace:
                mlflow.log_artifact(str(trace))
            mlflow.end_run(status="FAILED")
            if tmp is not None:
                _discard(tmp)
            return StepResult(step.name, FAILED, time.perf_counter() - t0, key, message), {}
    mlflow.log_dict(store.record(step.name, key), "step.json")
    mlflow.end_run()
    return StepResult(step.name, RAN, duration, key), published


def _step_record(step, ctx: Context, parts, reason: str, duration: float, run_id: str) -> dict:
    """The facts a published step keeps in its step.json."""
    return {
        "component": step.component.name,
        "params": dataclasses.asdict(step.params),
        "inputs": {k: {"uri": a.uri, "fingerprint": a.fingerprint} for k, a in ctx.inputs.items()},
        "metrics": ctx.metrics,
        "key_parts": parts,
        "cache_reason": reason,
        "duration_s": round(duration, 3),
        "mlflow_run_id": run_id,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _one_line(step: str, error: Exception, store: ArtifactStore, run_id: str):
    """(one-line message, traceback file or None)."""
    if isinstance(error, ComponentError):
        return f"{step}: {error}", None
    machine = environment_error(error)
    if machine:  # a full disk, a read-only store: the machine's fault, not the code's
        return f"{step}: {machine}", None
    # A bug, not a user mistake: keep the traceback in a file and say where.
    first = str(error).splitlines()[0] if str(error) else ""
    path = store.root / "runs" / run_id / f"{step}.traceback.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(error)))
    except OSError as e:
        return f"{step}: {type(error).__name__}: {first[:300]} (no traceback file: {e})", None
    return f"{step}: {type(error).__name__}: {first[:300]} (traceback: {path})", path


def _discard(tmp: Path) -> None:
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


def print_summary(results: list[StepResult], out: TextIO) -> None:
    rows = [("step", "status", "duration", "key")]
    rows += [(r.name, r.status, f"{r.duration:.1f}s", r.key[:12]) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line, file=out)
    for i, row in enumerate(rows):
        print(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |", file=out
        )
        if i == 0:
            print(line, file=out)
    print(line, file=out)
    for r in results:
        if r.error:
            print(f"error: {r.error}", file=out)
