"""``convflow run --explain``: what each step would do and why, without running anything.

Uses the runner's own key parts, effect checks and miss reasons, so the explanation is the
one the run would print. A step whose upstream would run cannot know its inputs yet: it is
shown as waiting for that step (it runs only if that step's output changes).
"""

from __future__ import annotations

import sys
from typing import TextIO

from convflow.pipelines import runner, tracking
from convflow.pipelines.cache import digest, package_versions, source_closure
from convflow.pipelines.config import Config
from convflow.pipelines.dag import Pipeline
from convflow.pipelines.store import ArtifactStore


def explain(pipeline: Pipeline, cfg: Config, opts: runner.RunOptions, out: TextIO | None = None):
    """Prints one line per step: ``STEP: cached``, ``STEP: runs (REASON)``, or waits.

    Returns:
        {step: "cached" | "runs" | "waits" | "not selected"}.
    """
    out = out or sys.stdout
    source_closure.cache_clear()
    selected, forced = runner.selection(pipeline, opts)
    store = ArtifactStore(cfg.pipeline.artifact_root)
    uri, _ = tracking.resolve_uri(opts.tracking_uri or cfg.pipeline.tracking_uri, create=False)
    facts = {
        "pipeline_name": pipeline.name,
        "config_hash": cfg.hash,
        "git_commit": runner.git_commit(),
        "tracking_uri": uri,
        "artifact_root": str(store.root),
        "model_name": cfg.pipeline.model_name,
        "task": pipeline.task,
    }
    versions = package_versions()
    published: dict[str, dict] = {}
    verdicts: dict[str, str] = {}
    for name in pipeline.order():
        step = pipeline.steps[name]
        if name not in selected and not (pipeline.downstream(name) & set(selected)):
            verdicts[name] = "not selected"
            continue
        waiting = sorted({ref.step for ref in step.inputs.values() if ref.step not in published})
        if waiting:
            verdicts[name] = "waits"
            print(f"{name}: runs if {', '.join(waiting)} changes its output", file=out)
            continue
        inputs = {k: published[ref.step][ref.output] for k, ref in step.inputs.items()}
        parts = runner.step_parts(step, inputs, versions, facts)
        key = digest(parts)
        hit = name not in forced and store.is_published(name, key)
        gone = runner.effect_gone(step, store, key, facts) if hit else None
        if hit and gone is None:
            published[name] = store.outputs(name, key)
            verdicts[name] = "cached"
            print(f"{name}: cached (key {key[:12]})", file=out)
            continue
        if name not in selected:
            verdicts[name] = "missing"
            print(f"{name}: no published output for this config (needed by --from)", file=out)
            continue
        reason = runner.miss_reason(pipeline, step, store, parts, forced, opts, gone)
        verdicts[name] = "runs"
        print(f"{name}: runs ({reason})", file=out)
    return verdicts
