"""Fake components produce and consume (double lives in doubling.py), logging each call."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from convflow.components.base import EXAMPLES, MODEL, ComponentError, Context, component, param


@dataclass(frozen=True)
class Params:
    log: str = param("")
    value: int = param(1, min=0)
    fail: bool = param(False)
    crash: bool = param(False)  # a bug rather than a user mistake
    note: str = param("")  # changes the key, never the output
    seed: int = param(0, min=0)  # consume adds it: sweeps repeat points over seeds
    # For the crash test: write half the output, touch this file, then hang.
    hang_marker: str = param("")
    # SIGINT arrives, and a cleanup turns the KeyboardInterrupt into an error of its own.
    interrupted_cleanup: bool = param(False)
    # Parallel sweeps: consume waits here until ``barrier_n`` points have arrived (so a sweep
    # whose points do not run at once fails), and records when it started and ended.
    barrier: str = param("")
    barrier_n: int = param(0, min=0)


def record(ctx: Context, name: str) -> None:
    with open(ctx.params.log, "a") as f:
        f.write(name + "\n")
    if ctx.params.interrupted_cleanup:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)  # the handler raises KeyboardInterrupt here
        except KeyboardInterrupt:
            raise RuntimeError("cleanup failed on the half-done state") from None


def read(ctx: Context, key: str) -> int:
    return json.loads((ctx.inputs[key].path / "data.json").read_text())["value"]


def write(ctx: Context, key: str, value: int, hang_marker: str = "") -> None:
    out = ctx.outputs[key]
    if hang_marker:
        (out.path / "part-1.bin").write_bytes(b"x" * 1000)
        Path(hang_marker).write_text(str(os.getpid()))
        time.sleep(600)
    (out.path / "data.json").write_text(json.dumps({"value": value}))
    out.properties["value"] = value
    ctx.log_metrics({"value": value})


@component(name="produce", inputs={}, outputs={"examples": EXAMPLES}, params=Params)
def produce(ctx: Context) -> None:
    record(ctx, "produce")
    write(ctx, "examples", ctx.params.value)


def meet(ctx: Context, timeout_s: float = 120) -> None:
    """Waits until ``barrier_n`` consume steps are inside this one at once (see Params)."""
    folder = Path(ctx.params.barrier)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"arrived-{os.getpid()}-{ctx.params.seed}").write_text(str(time.time()))
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("arrived-*"))) < ctx.params.barrier_n:
        if time.monotonic() > deadline:
            raise ComponentError(f"barrier: no {ctx.params.barrier_n} points at once")
        time.sleep(0.1)


@component(name="consume", inputs={"examples": EXAMPLES}, outputs={"model": MODEL}, params=Params)
def consume(ctx: Context) -> None:
    record(ctx, "consume")
    if ctx.params.barrier:
        meet(ctx)
    write(ctx, "model", read(ctx, "examples") + ctx.params.value + ctx.params.seed)
