"""Runs the preprocess Beam job on the configured runner and reads back what it wrote.

The job (``beam_job.py``) writes its summary to a file; this driver runs the analyze pass
when the job standardizes, then the main pass, and derives the counts and the dead-letter
file from the summary, so that every runner reports the same numbers.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from convflow.components.base import ComponentError
from convflow.components.preprocess import runners
from convflow.components.preprocess.beam_job import (
    NAMESPACE,
    JobSpec,
    analyze_path,
    build,
    build_analyze,
)
from convflow.components.transforms import STANDARDIZE

logger = logging.getLogger(__name__)


def _run_pipeline(options: Sequence[str], build_fn, *args) -> dict[str, int] | None:
    """Runs one pipeline to the end; the runner's counters, or None if it has none."""
    pipeline = beam.Pipeline(options=PipelineOptions(list(options)))
    build_fn(pipeline, *args)
    try:
        result = pipeline.run()
    except OSError as e:  # distributed.Client's connection timeout is an OSError
        address = runners.flag(options, "dask_client_address")
        if address is None:
            raise
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ComponentError(
            f"preprocess.runner=DaskRunner could not reach {address}: {reason}; is a "
            "`dask scheduler` listening there, with workers?"
        ) from None
    try:
        result.wait_until_finish()
        query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except NotImplementedError:  # the DaskRunner reports no metrics
        return None
    finally:
        client = getattr(result, "client", None)  # the DaskRunner's connection
        if client is not None:
            client.close()
    counters = {}
    for c in query["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(value or 0)
    return counters


def _load(path: str) -> list:
    """The items a job wrote, or none when it had no elements to write."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def _write_dead_letters(dead: list, path: str) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "w") as f:
        for (split, file, record), reason in sorted(dead):
            row = {"split": split, "file": file, "record": record, "reason": reason}
            f.write(json.dumps(row, sort_keys=True) + "\n")


def run(spec: JobSpec, options: Sequence[str]) -> tuple[list, dict[str, int]]:
    """Runs the job to completion (with its analyze pass first when it standardizes).

    Writes ``spec.rejected_path`` (dead letters, one JSON object per line, sorted).

    Returns:
        The summary items (moments, files, rejected counts per split, standardization
        constants) and the counts ``records_read``, ``records_rejected``,
        ``records_written``, taken from the data so that every runner reports the same.

    Raises:
        ComponentError: ``standardize`` with no valid training image.
    """
    stats = None
    if STANDARDIZE in spec.steps:
        _run_pipeline(options, build_analyze, spec)
        found = _load(analyze_path(spec))
        if not found:
            raise ComponentError(
                "standardize needs training images, but the train split has no valid image"
            )
        stats = found[0]
    runner_counters = _run_pipeline(options, build, spec, stats)
    items = _load(spec.summary_path)
    dead = [(tuple(key), reason) for kind, key, reason in items if kind == "dead"]
    _write_dead_letters(dead, spec.rejected_path)
    rejected = defaultdict(int)
    for (split, _, _), _ in dead:
        rejected[split] += 1
    counters = {
        "records_read": sum(n for kind, _, n in items if kind == "read"),
        "records_rejected": len(dead),
        "records_written": sum(e["count"] for kind, _, e in items if kind == "file"),
    }
    if runner_counters is not None and any(
        runner_counters.get(k, 0) != v for k, v in counters.items()
    ):
        logger.warning(
            "preprocess: runner counters %s differ from the data's %s", runner_counters, counters
        )
    kept = [item for item in items if item[0] in ("moments", "file")]
    kept += [("rejected", [split], n) for split, n in sorted(rejected.items())]
    if stats is not None:
        kept.append(("standardize", [], stats))
    return kept, counters
