"""``convflow schedule``: its arguments, the child command, and units for the OS scheduler.

The loop itself is in :mod:`convflow.pipelines.scheduler`. This module stays light (no
MLflow, no TensorFlow): ``--print-systemd`` and ``--print-cron`` only print text.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from convflow.pipelines.config import ConfigError
from convflow.pipelines.triggers import TRIGGERS

EXIT_USAGE = 2
STOP_MARGIN_S = 30  # systemd's stop timeout over the grace period: SIGINT + SIGKILL time


def add_orchestration_args(run: argparse.ArgumentParser) -> None:
    """``convflow run``'s flags for schedulers and orchestrators."""
    run.add_argument(
        "--only", metavar="STEP", help="run exactly STEP, its inputs taken from the store"
    )
    run.add_argument(
        "--trigger",
        choices=TRIGGERS,
        default="manual",
        help="what started this run (the parent MLflow run's `trigger` tag)",
    )
    run.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another tag for the parent MLflow run; repeatable",
    )
    run.add_argument(
        "--run-group",
        metavar="ID",
        help="steps run one by one with the same ID share one parent MLflow run",
    )


def add_parser(sub, with_config) -> None:
    sch = sub.add_parser(
        "schedule",
        help="run a pipeline on a cron schedule and/or when its data changes (foreground)",
        description="Runs in the foreground (systemd, a container or tmux keeps it alive); "
        "each run is a child `convflow run`. SIGTERM/SIGINT stop it (see --grace).",
    )
    with_config(sch)
    sch.add_argument("--cron", metavar="EXPR", help='e.g. "0 2 * * *" (default: schedule.cron)')
    sch.add_argument("--timezone", metavar="TZ", help="IANA zone (default: schedule.timezone)")
    sch.add_argument(
        "--catchup",
        choices=("none", "latest"),
        help="latest: run once at start-up if a tick was missed (default: schedule.catchup)",
    )
    sch.add_argument("--on-data-change", action="store_true", help="run when the data changes")
    sch.add_argument(
        "--poll", type=float, default=30.0, metavar="SECONDS", help="data check period (30)"
    )
    sch.add_argument("--max-runs", type=int, metavar="N", help="exit after N runs")
    sch.add_argument(
        "--grace",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, let the current run finish this long, then stop it (600)",
    )
    sch.add_argument("--log", metavar="FILE", help="default: <artifact_root>/schedule.log")
    sch.add_argument("--tracking-uri", help="MLflow tracking URI for the runs")
    sch.add_argument("--artifact-root", help="override pipeline.artifact_root")
    sch.add_argument("--print-systemd", action="store_true", help="print a unit + timer, exit")
    sch.add_argument("--print-cron", action="store_true", help="print a crontab line, exit")
    sch.set_defaults(fn=_cmd_schedule)


def _settings(args, cfg) -> tuple[str | None, str, str]:
    """(cron, timezone, catchup) from the flags, else the config's schedule: section."""
    from convflow.pipelines.config import ScheduleSettings, build_dataclass

    base = cfg.schedule or ScheduleSettings()
    flags = {"cron": args.cron, "timezone": args.timezone, "catchup": args.catchup}
    data = {**{k: getattr(base, k) for k in flags}, **{k: v for k, v in flags.items() if v}}
    merged = build_dataclass(ScheduleSettings, data, "schedule")  # checks the flags too
    return merged.cron, merged.timezone, merged.catchup


def run_command(args, cfg) -> list[str]:
    """The child's ``convflow run`` argv (this interpreter, the same config and flags)."""
    cmd = [sys.executable, "-m", "convflow.pipelines.cli", "run", str(Path(args.config).absolute())]
    for item in args.set:
        cmd += ["--set", item]
    if args.tracking_uri:
        cmd += ["--tracking-uri", args.tracking_uri]
    if args.artifact_root:
        cmd += ["--artifact-root", args.artifact_root]
    return [*cmd, "--quiet"]


def _cmd_schedule(args) -> int:
    from convflow.pipelines.cli import load_config

    cfg, definition = load_config(args.config, args.set)
    definition.create_pipeline(cfg)  # a miswired pipeline fails now, not at the first tick
    cron, tz, catchup = _settings(args, cfg)
    if args.print_systemd:
        print(systemd_units(args, cfg, cron, tz, catchup), end="")
        return 0
    if args.print_cron:
        print(cron_line(args, cron, tz), end="")
        return 0
    if not cron and not args.on_data_change:
        raise ConfigError(
            "nothing to schedule: give --cron EXPR, schedule.cron or --on-data-change"
        )
    if args.poll <= 0 or args.grace < 0 or (args.max_runs is not None and args.max_runs < 1):
        raise ConfigError("--poll must be > 0, --grace >= 0 and --max-runs >= 1")
    return _loop(args, cfg, cron, tz, catchup)


def _loop(args, cfg, cron, tz, catchup) -> int:
    from zoneinfo import ZoneInfo

    from convflow.components.ingest.fingerprint import source_fingerprint
    from convflow.pipelines.scheduler import Plan, Scheduler

    root = Path(args.artifact_root or cfg.pipeline.artifact_root).absolute()
    ingest = cfg["ingest"] if "ingest" in cfg.sections else None
    if args.on_data_change and ingest is None:
        raise ConfigError("--on-data-change: this pipeline has no ingest step to watch")
    plan = Plan(
        command=run_command(args, cfg),
        cron=cron,
        timezone=ZoneInfo(tz),
        catchup=catchup,
        fingerprint=(lambda: source_fingerprint(ingest)) if args.on_data_change else None,
        poll_s=args.poll,
        max_runs=args.max_runs,
        grace_s=args.grace,
        log_path=Path(args.log).absolute() if args.log else root / "schedule.log",
        state_path=root / f".schedule-{cfg.pipeline.name}.json",
    )
    return Scheduler(plan).run()


def _os_command(args, cron: str) -> str:
    exe = Path(sys.executable).with_name("convflow")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "convflow.pipelines.cli"]
    cmd += ["run", str(Path(args.config).absolute())]
    for item in args.set:
        cmd += ["--set", item]
    for flag in ("tracking_uri", "artifact_root"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    cmd += ["--trigger", "schedule", "--tag", f"schedule={cron}", "--wait", "3600", "--quiet"]
    return shlex.join(cmd)


def cron_line(args, cron: str | None, tz: str) -> str:
    """A crontab entry (with CRON_TZ) that runs the pipeline at the schedule's ticks."""
    if not cron or len(cron.split()) != 5:
        raise ConfigError(f"--print-cron: needs a 5-field cron expression, got {cron!r}")
    log = Path(args.log or "convflow-schedule.log").absolute()
    return (
        f"# convflow {Path(args.config).name}: crontab -e, then paste these two lines\n"
        f"CRON_TZ={tz}\n"
        f"{cron} cd {shlex.quote(str(Path.cwd()))} && {_os_command(args, cron)} "
        f">> {shlex.quote(str(log))} 2>&1\n"
    )


def systemd_units(args, cfg, cron: str | None, tz: str, catchup: str) -> str:
    """A oneshot service and its timer (OnCalendar from the cron expression)."""
    from convflow.pipelines.oncalendar import to_oncalendar

    if not cron:
        raise ConfigError("--print-systemd: give --cron EXPR or schedule.cron")
    calendar = to_oncalendar(cron, tz)
    unit = f"convflow-{cfg.pipeline.name}"
    persistent = "true" if catchup == "latest" else "false"
    return f"""# /etc/systemd/system/{unit}.service
[Unit]
Description=convflow pipeline {cfg.pipeline.name} ({Path(args.config).name})

[Service]
Type=oneshot
WorkingDirectory={Path.cwd()}
ExecStart={_os_command(args, cron)}
# SIGINT lets the step in progress mark its MLflow run KILLED; publishing is atomic.
KillSignal=SIGINT
TimeoutStopSec={int(args.grace) + STOP_MARGIN_S}

# /etc/systemd/system/{unit}.timer
[Unit]
Description=convflow pipeline {cfg.pipeline.name} at {cron} ({tz})

[Timer]
OnCalendar={calendar}
# true: a tick missed while the machine was off runs once at boot (--catchup latest)
Persistent={persistent}

[Install]
WantedBy=timers.target

# then: systemctl daemon-reload && systemctl enable --now {unit}.timer
"""
