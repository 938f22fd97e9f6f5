"""``convflow sweep --max-parallel N``: up to N points of a sweep at once, a process each.

Each point runs in a process of its own, started by ``spawn`` (TensorFlow does not survive
``fork``), through the same :func:`convflow.pipelines.sweep.run_point` as a sequential sweep:
a normal pipeline run nested under the sweep's MLflow run. The artifact store lets the runs
proceed together; a step that several points need is computed by the first to claim its
key, and the others wait for that key's lock (as long as it is held: its holder is a point
making progress, and the kernel frees the lock if it dies) and then find a cache hit.

A point's own output (its step lines and summary table) goes to
``<artifact_root>/sweeps/<sweep id>/point-<n>.log``; the terminal gets one line per finished
point. Rows come back in the points' order, whatever order they finished in.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from convflow.pipelines.sweep import Build, Point, PointResult, SweepSpec, log, run_point

GRACE_S = 5.0  # a point interrupted by Ctrl-C ends its step's MLflow run within this


class PointProcessDied(Exception):
    """A point's process died (SIGKILL, out of memory) before it could report."""


def run_points(
    spec: SweepSpec, build: Build, opts, sweep_run_id: str, max_parallel: int, folder: Path
) -> list[PointResult]:
    """Runs every point of ``spec``, up to ``max_parallel`` at once; returns rows in order.

    Args:
        build: overrides -> (Pipeline, Config); picklable (a module-level function or a
            ``functools.partial`` of one), since each process builds its own pipeline.
        opts: the sweep's ``runner.RunOptions`` (its tracking URI already resolved).
        folder: where each point's log goes (``point-<n>.log``).

    Raises:
        PipelineError, StoreLockedError, TrackingUnavailable: a point's, as a sequential
            sweep raises them; the points still running are interrupted (SIGINT).
        PointProcessDied: a point's process died.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # Points wait for each other's shared steps for as long as the computing point lives.
    opts = dataclasses.replace(opts, wait=float("inf"), show_progress=False)
    rows: dict[int, PointResult] = {}
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=max_parallel, mp_context=context, initializer=_ignore_sigint
    )
    todo = iter(spec.points)
    pending: dict = {}  # future -> its point; never more than the pool runs at once, so
    # after an interrupt no queued point is left to start

    def submit_next() -> None:
        point = next(todo, None)
        if point is not None:
            log_path = folder / f"point-{point.index + 1}.log"
            args = (build, spec, opts, sweep_run_id, point, log_path)
            pending[pool.submit(_run_in_child, *args)] = point

    try:
        for _ in range(max_parallel):
            submit_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                point = pending.pop(future)
                try:
                    row, seconds = future.result()
                except BrokenProcessPool as e:
                    # The pool fails every running point at once: which one died is unknown.
                    ran = sorted(p.index + 1 for p in [point, *pending.values()])
                    raise PointProcessDied(
                        f"a point's process died ({e}) while points {ran} ran; re-run the "
                        "sweep to resume (finished points are cache hits)"
                    ) from None
                rows[point.index] = row
                log(_finished_line(spec, row, seconds, len(rows), folder))
                submit_next()
    except BaseException:
        _interrupt(pool, pending)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [rows[p.index] for p in spec.points]


def _run_in_child(
    build: Build, spec: SweepSpec, opts, sweep_run_id: str, point: Point, log_path: Path
) -> tuple[PointResult, float]:
    """One point, in a pool process: (its row, wall seconds). Its output goes to ``log_path``."""
    t0 = time.perf_counter()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: the step ends KILLED
    try:
        with _output_to(log_path):
            print(f"▶ point {point.index + 1}: {point.label()}", flush=True)
            pipeline, cfg = build(point.overrides(spec))
            row = run_point(spec, point, pipeline, cfg, opts, sweep_run_id, out=sys.stdout)
    finally:
        _ignore_sigint()
    return row, time.perf_counter() - t0


def _ignore_sigint() -> None:
    # An idle pool process has nothing to stop; a KeyboardInterrupt there only prints a
    # traceback from the executor's queue.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _output_to(path: Path):
    """Points file descriptors 1 and 2 (Python's, C++'s, child processes') at ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _finished_line(spec: SweepSpec, row: PointResult, seconds: float, n_done: int, folder):
    counts = collections.Counter(row.statuses.values())
    steps = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = f"point {row.point.index + 1} ({row.point.label()})"
    where = f"[{n_done}/{len(spec.points)}, {seconds:.1f} s]"
    if row.error:
        log_path = folder / f"point-{row.point.index + 1}.log"
        return f"✘ {head} failed: {row.error} {where} (log: {log_path})"
    return f"✔ {head}: {steps} {where}"


def _interrupt(pool: ProcessPoolExecutor, running) -> None:
    """Stops the points still running; their steps end KILLED, as after Ctrl-C.

    Ctrl-C reaches the whole process group, so the points got SIGINT already and end within
    seconds; a second one could cut their cleanup short. Only a point still running after
    :data:`GRACE_S` (the SIGINT went to this process alone, or another error stopped the
    sweep) gets one. Idle pool processes ignore SIGINT.
    """
    wait(running, timeout=GRACE_S)
    # The executor keeps no public list of its processes; _processes is the pid -> Process map.
    for proc in list((pool._processes or {}).values()):
        if proc.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
