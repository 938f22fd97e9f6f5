"""The ``convflow sweep`` subcommand (the work is in :mod:`convflow.pipelines.sweep`)."""

from __future__ import annotations

import functools
import sys

EXIT_USAGE, EXIT_FAILED = 2, 1


def add_parser(sub) -> None:
    sw = sub.add_parser(
        "sweep",
        help="run a pipeline once per point of a grid (and seed), compared under one MLflow run",
        description="A sweep file names a base config, a grid and/or a list of overrides (keys "
        "as --set), seeds and the metrics to compare; see configs/sweeps/. Re-running an "
        "interrupted sweep resumes it: finished points are cache hits.",
    )
    sw.add_argument(
        "sweep", metavar="SWEEP.yaml", help="sweep file, e.g. configs/sweeps/pooling.yaml"
    )
    sw.add_argument("--dry-run", action="store_true", help="check and list the points; run none")
    sw.add_argument(
        "--max-parallel",
        type=int,
        default=1,
        metavar="N",
        help="points run at once, each in its own process (default 1); steps that points "
        "share are still computed once: the other points wait for them and find cache hits",
    )
    sw.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or embedded sqlite)",
    )
    sw.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a step another run is computing (default: fail at once); "
        "with --max-parallel above 1, points wait for such a step as long as its holder lives",
    )
    sw.add_argument("--verbose", action="store_true", help="show library start-up messages")
    sw.set_defaults(fn=cmd_sweep)


def cmd_sweep(args) -> int:
    from convflow.pipelines import runner, sweep
    from convflow.pipelines.dag import PipelineError
    from convflow.pipelines.quiet import quiet_stderr
    from convflow.pipelines.store import StoreLockedError
    from convflow.pipelines.sweep_parallel import PointProcessDied
    from convflow.pipelines.tracking import TrackingUnavailable

    if args.max_parallel < 1:
        print(
            f"error: --max-parallel {args.max_parallel}: expected a number of points >= 1",
            file=sys.stderr,
        )
        return EXIT_USAGE
    spec = sweep.load(args.sweep)  # ConfigError -> one line, exit 2 (cli.main)
    # A module-level function (picklable): with --max-parallel each point's process builds
    # its own pipeline.
    build = functools.partial(build_point, str(spec.base))

    if args.dry_run:
        sweep.dry_run(spec, build, sys.stdout)
        return 0
    opts = runner.RunOptions(
        tracking_uri=args.tracking_uri, wait=args.wait, show_progress=sys.stdout.isatty()
    )
    try:
        with quiet_stderr(enabled=not args.verbose):
            rows, _ = sweep.run_sweep(spec, build, opts, max_parallel=args.max_parallel)
    except (PipelineError, StoreLockedError, TrackingUnavailable, PointProcessDied) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, PipelineError) else EXIT_FAILED
    failed = [r for r in rows if r.error]
    for r in failed:
        print(f"error: point {r.point.index + 1} ({r.point.label()}): {r.error}", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def build_point(base: str, overrides: list[str]):
    """(Pipeline, Config) of the pipeline config ``base`` with ``overrides`` (``--set``)."""
    from convflow.pipelines.cli import load_config

    cfg, definition = load_config(base, overrides)
    return definition.create_pipeline(cfg), cfg
