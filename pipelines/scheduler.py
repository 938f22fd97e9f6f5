"""The foreground scheduler behind ``convflow schedule``: cron ticks and data changes.

One loop, one child process at a time. Each run is ``convflow run CONFIG`` in a child
process (its memory goes back to the system when it exits) that takes the store lock like
any run. A tick that comes while a run is going is skipped and written to the log; a data
change seen meanwhile is run after it. SIGTERM or SIGINT stops the scheduling; the current
run may finish within the grace period, then gets SIGINT (its step is marked KILLED in
MLflow) and, 10 s later, SIGKILL. Publishing is atomic, so a run stopped at any instant
leaves whole published steps only, and the next run resumes from them.

State that must outlive the process (the last tick handled, for ``--catchup latest``; the
source fingerprint of the last run, for data triggers) is kept in a small JSON file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TextIO

RUN_ID_LINE = re.compile(r"^(?:▶ )?MLflow run (\w+) ")
KILL_AFTER_SIGINT_S = 10.0


@dataclass
class Plan:
    """What to run and when.

    Attributes:
        command: the child's argv without the trigger flags, e.g.
            ``[python, -m, convflow.pipelines.cli, run, CONFIG, --set, ...]``.
        cron: a cron expression (5 fields, or 6 with seconds last) or None.
        timezone: the zone the cron fields are read in.
        catchup: "latest": run once at start-up when a tick passed while down; "none".
        fingerprint: returns the ingest source's fingerprint; None: no data trigger.
        poll_s: seconds between two fingerprint checks.
        max_runs: stop after this many runs (skipped ticks do not count); None: never.
        grace_s: how long a run may go on after SIGTERM/SIGINT before it is stopped.
        log_path: the plain log, one line per run.
        state_path: the JSON state file.
    """

    command: list[str]
    cron: str | None
    timezone: tzinfo
    catchup: str = "none"
    fingerprint: Callable[[], str] | None = None
    poll_s: float = 30.0
    max_runs: int | None = None
    grace_s: float = 600.0
    log_path: Path = Path("schedule.log")
    state_path: Path = Path(".schedule-state.json")


@dataclass
class Child:
    """A run in progress."""

    proc: subprocess.Popen
    trigger: str
    started: datetime
    data: dict[str, str] = field(default_factory=dict)
    run_id: str = "-"
    error: str = ""
    reader: threading.Thread | None = None


class Scheduler:
    """Runs ``plan`` until stopped (signal, ``max_runs``); see the module docstring."""

    def __init__(self, plan: Plan, out: TextIO | None = None):
        self.plan = plan
        self.out = out or sys.stdout
        self.stop = threading.Event()
        self.child: Child | None = None
        self.hurry = False  # a second signal: no more grace
        self.runs = 0
        self.state = _read_state(plan.state_path)
        self.ticks = None
        if plan.cron:
            from croniter import croniter

            self.ticks = croniter(plan.cron, self.now())
        self.next_tick = self.ticks.get_next(datetime) if self.ticks else None
        self.next_poll = time.monotonic()

    def now(self) -> datetime:
        return datetime.now(self.plan.timezone)

    # -- the loop ------------------------------------------------------------
    def run(self) -> int:
        """The loop; returns the process exit code (0 after a clean stop, 1 when another
        scheduler already runs this pipeline on this store)."""
        lock = _hold(self.plan.state_path.with_suffix(".lock"))
        if lock is None:
            print(
                f"error: another `convflow schedule` runs this pipeline on this store "
                f"({self.plan.state_path.with_suffix('.lock')}); stop it first",
                file=sys.stderr,
            )
            return 1
        self._install_signals()
        self._say(f"scheduler started: {self._describe()}; log {self.plan.log_path}")
        self._catch_up()
        if self.ticks and "last_tick" not in self.state:  # from now on, a missed tick is seen
            self.state["last_tick"] = self.now().isoformat()
            _write_state(self.plan.state_path, self.state)
        while not self.stop.is_set() and not self._done():
            self._reap()
            if self.next_tick is not None and self.now() >= self.next_tick:
                self._on_tick(self.next_tick)
                self.next_tick = self.ticks.get_next(datetime)
            if self.plan.fingerprint and time.monotonic() >= self.next_poll:
                self._on_poll()
                self.next_poll = time.monotonic() + self.plan.poll_s
            self.stop.wait(self._sleep_s())
        self._shutdown()
        return 0

    def _done(self) -> bool:
        limit = self.plan.max_runs
        return limit is not None and self.runs >= limit and self.child is None

    def _sleep_s(self) -> float:
        waits = [1.0]
        if self.child is not None:
            waits.append(0.2)
        if self.next_tick is not None:
            waits.append((self.next_tick - self.now()).total_seconds())
        if self.plan.fingerprint:
            waits.append(self.next_poll - time.monotonic())
        return max(0.01, min(waits))

    def _on_tick(self, tick: datetime) -> None:
        self.state["last_tick"] = tick.isoformat()
        _write_state(self.plan.state_path, self.state)
        if self.child is not None:
            self._log_line(tick, tick, "skipped", "schedule", "-", self._busy())
            return
        if self._may_start():
            self._start("schedule", {"schedule": self.plan.cron})

    def _on_poll(self) -> None:
        new = self.plan.fingerprint()
        old = self.state.get("data_fingerprint")
        if old is None:  # first start: this is the data runs compare with
            self.state["data_fingerprint"] = new
            _write_state(self.plan.state_path, self.state)
        elif new != old and self.child is None and self._may_start():
            tags = {"data.old_fingerprint": old, "data.new_fingerprint": new}
            self._start("data", tags)

    def _catch_up(self) -> None:
        if self.plan.catchup != "latest" or not self.ticks or "last_tick" not in self.state:
            return
        from croniter import croniter

        latest = croniter(self.plan.cron, self.now()).get_prev(datetime)
        if datetime.fromisoformat(self.state["last_tick"]) < latest:
            self._say(f"catch-up: tick {latest.isoformat()} was missed; running now")
            self.state["last_tick"] = latest.isoformat()
            self._start("schedule", {"schedule": self.plan.cron, "schedule.catchup": "latest"})

    def _may_start(self) -> bool:
        return self.plan.max_runs is None or self.runs < self.plan.max_runs

    # -- children ------------------------------------------------------------
    def _start(self, trigger: str, tags: dict[str, str]) -> None:
        if self.plan.fingerprint:
            # This run reads the data as it is now: a later change triggers the next one.
            self.state["data_fingerprint"] = self.plan.fingerprint()
            _write_state(self.plan.state_path, self.state)
        cmd = [*self.plan.command, "--trigger", trigger]
        for k, v in tags.items():
            cmd += ["--tag", f"{k}={v}"]
        self.runs += 1
        self._say(f"run {self.runs} ({trigger}) starting")
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # a Ctrl-C at the terminal is for the scheduler only
        )
        self.child = Child(proc, trigger, self.now(), tags)
        self.child.reader = threading.Thread(target=self._pump, args=(self.child,), daemon=True)
        self.child.reader.start()

    def _pump(self, child: Child) -> None:
        """Copies the child's output to ours; keeps its MLflow run id and last error line."""
        for line in child.proc.stdout:
            self.out.write(line)
            self.out.flush()
            match = RUN_ID_LINE.match(line)
            if match:
                child.run_id = match.group(1)
            elif line.startswith("error: "):
                child.error = line.removeprefix("error: ").strip()

    def _reap(self, status: str | None = None) -> None:
        child = self.child
        if child is None or child.proc.poll() is None:
            return
        child.reader.join(timeout=5)
        code = child.proc.returncode
        locked = "another convflow run" in child.error  # a run by hand holds the store
        status = status or ("ok" if code == 0 else "locked" if locked else "failed")
        detail = f"exit {code}" + (f": {child.error}" if child.error else "")
        self._log_line(child.started, self.now(), status, child.trigger, child.run_id, detail)
        self.child = None

    def _busy(self) -> str:
        c = self.child
        return f"previous run (pid {c.proc.pid}, started {c.started:%H:%M:%S}) still going"

    # -- stopping ------------------------------------------------------------
    def _install_signals(self) -> None:
        def handle(signum, frame):
            if self.stop.is_set() and self.child is not None:
                self._say("second signal: stopping the run now")
                self.hurry = True
            self.stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _shutdown(self) -> None:
        child = self.child
        if child is None:
            self._say("scheduler stopped")
            return
        if not self._done():
            self._say(f"stopping: the run may finish within {self.plan.grace_s:.0f}s")
        deadline = time.monotonic() + self.plan.grace_s
        while child.proc.poll() is None and time.monotonic() < deadline and not self.hurry:
            time.sleep(0.1)
        if child.proc.poll() is None:
            self._say(f"grace period over: interrupting run pid {child.proc.pid}")
            _signal_group(child.proc, signal.SIGINT)
            try:
                child.proc.wait(KILL_AFTER_SIGINT_S)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait()
            self._reap("stopped")
        else:
            self._reap()
        self._say("scheduler stopped")

    # -- output --------------------------------------------------------------
    def _describe(self) -> str:
        parts = []
        if self.plan.cron:
            parts.append(f"cron {self.plan.cron!r} ({self.plan.timezone}), next {self.next_tick}")
        if self.plan.fingerprint:
            parts.append(f"data changes every {self.plan.poll_s:g}s")
        return "; ".join(parts)

    def _say(self, text: str) -> None:
        print(f"[schedule {self.now():%Y-%m-%d %H:%M:%S}] {text}", file=self.out, flush=True)

    def _log_line(self, start, end, status, trigger, run_id, detail) -> None:
        line = (
            f"start={start.isoformat(timespec='seconds')} end={end.isoformat(timespec='seconds')} "
            f"status={status} trigger={trigger} mlflow_run_id={run_id} detail={detail!r}"
        )
        self.plan.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.plan.log_path, "a") as f:
            f.write(line + "\n")
        self._say(line)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # the run and whatever it started (Beam workers)


def _hold(path: Path) -> int | None:
    """An exclusive flock on ``path`` for the life of the process, or None if taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)  # atomic: a crash leaves the old state or the new one
