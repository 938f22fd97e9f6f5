"""The ``convflow`` command: run, validate, sweep, models, predict."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from convflow.pipelines import exporters, registry_commands, scheduling, sweep_command, ui
from convflow.pipelines.config import ConfigError, apply_overrides, read_yaml, resolve
from convflow.pipelines.scheduling import add_orchestration_args

EXIT_USAGE, EXIT_FAILED = 2, 1
EXIT_SIGPIPE = 128 + 13  # what a shell reports for a program that SIGPIPE ended


def load_config(path: str, overrides: list[str]):
    """Reads, overrides and validates a config; returns (Config, definition module)."""
    from convflow.pipelines import definitions

    data = apply_overrides(read_yaml(path), overrides)
    section = data.get("pipeline") or {}
    template = (
        section.get("template", "image_classification") if isinstance(section, dict) else None
    )
    definition = definitions.get(template)
    cfg = resolve(data, {n: c.params_cls for n, c in definition.COMPONENTS.items()}, path)
    check_steps(cfg, definition)
    return cfg, definition


def check_steps(cfg, definition) -> None:
    """Runs each step's own config checks (spec.check: transform order, the model against the
    zoo and the task) before any work; the first failure is one ConfigError line."""
    from convflow.components import tasks

    task = tasks.get(definition.TASK)
    for name, comp in definition.COMPONENTS.items():
        if comp.check is not None:
            try:
                comp.check(cfg[name], task)
            except ValueError as e:
                raise ConfigError(str(e)) from None


def _run_options(args, tags: dict):
    from convflow.pipelines import runner

    return runner.RunOptions(
        force=args.force,
        from_step=args.from_step,
        to_step=args.to_step,
        tracking_uri=args.tracking_uri,
        wait=args.wait,
        show_progress=not args.quiet and sys.stdout.isatty(),  # bars only on a terminal
        only=args.only,
        trigger=args.trigger,
        tags=tags,
        run_group=args.run_group,
    )


def _cmd_run(args) -> int:
    from convflow.pipelines.triggers import parse_tags

    cfg, definition = load_config(args.config, args.set)
    if args.artifact_root:
        import dataclasses

        cfg = dataclasses.replace(
            cfg, pipeline=dataclasses.replace(cfg.pipeline, artifact_root=args.artifact_root)
        )
    if args.only and (args.from_step or args.to_step):
        print("error: --only STEP runs one step; drop --from/--to", file=sys.stderr)
        return EXIT_USAGE
    try:
        tags = parse_tags(args.tag)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    opts = _run_options(args, tags)
    if args.explain:
        from convflow.pipelines.explain import explain

        explain(definition.create_pipeline(cfg), cfg, opts)
        return 0
    return _run_pipeline(definition, cfg, opts, verbose=args.verbose)


def _run_pipeline(definition, cfg, opts, verbose: bool) -> int:
    """Runs the pipeline; a failure of the store, the tracking server or the machine is one
    ``error:`` line with its exit code, a bug keeps its traceback."""
    from convflow.pipelines import runner
    from convflow.pipelines.dag import PipelineError
    from convflow.pipelines.quiet import quiet_stderr
    from convflow.pipelines.store import StoreLockedError
    from convflow.pipelines.tracking import TrackingUnavailable

    try:
        pipeline = definition.create_pipeline(cfg)
        with quiet_stderr(enabled=not verbose):
            results, _ = runner.run(pipeline, cfg, opts)
    except (PipelineError, StoreLockedError, TrackingUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, PipelineError) else EXIT_FAILED
    except OSError as e:  # e.g. an artifact root that cannot be created or written
        if isinstance(e, BrokenPipeError) and stdout_closed():
            raise  # the reader left (`convflow run ... | head`): main() stops quietly
        from convflow.pipelines.errors import exit_code_for_os_error

        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return exit_code_for_os_error(e, EXIT_USAGE, EXIT_FAILED)
    except Exception as e:
        if type(e).__module__.startswith(("mlflow", "requests", "urllib3")):
            print(
                f"error: lost the MLflow tracking store mid-run ({str(e).splitlines()[0][:200]}); "
                f"published artifacts are kept in {cfg.pipeline.artifact_root}: re-run to resume",
                file=sys.stderr,
            )
            return EXIT_FAILED
        raise
    return EXIT_FAILED if any(r.status == runner.FAILED for r in results) else 0


def _cmd_validate(args) -> int:
    cfg, definition = load_config(args.config, args.set)
    definition.create_pipeline(cfg)
    print(cfg.to_yaml(), end="")
    return 0


def _cmd_models(args) -> int:
    import shutil

    from convflow.models import catalog

    header = ("model", "kind", "params", "inputs", "paper")
    rows = [
        (r["name"], r["kind"], f"{r['params']:,}", r["input_sizes"], r["paper"])
        for r in catalog.rows(kind=args.kind)
    ]
    width = shutil.get_terminal_size((160, 24)).columns
    print(_table(header, rows, width, caps=(None, None, None, 36, None)))
    return 0


def _table(header, rows, width: int, caps) -> str:
    """Left-aligned columns, each at most its cap; the last one is cut (…) to fit ``width``."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    widths = [min(w, cap) if cap else w for w, cap in zip(widths, caps, strict=True)]
    widths[-1] = min(widths[-1], max(30, width - sum(widths[:-1]) - 2 * (len(widths) - 1)))
    lines = []
    for r in [header, *rows]:
        cells = [_cut(str(c), w) for c, w in zip(r, widths, strict=True)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


DEFAULT_MODEL_URI = "models:/fashion_mnist_lenet@champion"


def _cmd_predict(args) -> int:
    from convflow.components.serving.mlflow_io import tracking
    from convflow.components.serving.predict import predict
    from convflow.pipelines.embedded import discover

    model = args.model or DEFAULT_MODEL_URI
    # A model directory on disk loads without any store; a registry or run URI needs one.
    local = model.startswith("file:") or os.path.isdir(model)
    uri, where = discover(args.tracking_uri)  # like the run; never creates a store
    if uri is None and not local:
        print(f"error: no MLflow store to load the model from: {where}", file=sys.stderr)
        return EXIT_USAGE
    with tracking(uri) if uri else contextlib.nullcontext():
        code = predict(model, args.images, trust=args.trust_model, out_dir=args.out,
                       overrides=_predict_overrides(args))  # fmt: skip
    if code == 2 and not local:  # the model did not load: say which store was asked
        print(f"(looked in {where})", file=sys.stderr)
    return code


def _predict_overrides(args) -> dict[str, float]:
    """The served post-processing settings given on the command line (detection's NMS)."""
    names = ("score_threshold", "iou_threshold")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("convflow")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked: the lookup scans site-packages, and every
    command (a fully cached run too) builds this parser."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("help", "show the installed convflow version and exit")
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"convflow {_version()}")
        parser.exit()


def _with_config(p: argparse.ArgumentParser) -> None:
    """The config argument and ``--set`` overrides that every config-taking command shares."""
    p.add_argument("config", help="pipeline config YAML, e.g. configs/fashion_mnist_lenet.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (YAML-typed); repeatable",
    )


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run a pipeline (cached, resumable)")
    _with_config(run)
    run.add_argument("--force", action="store_true", help="ignore the cache for the selected steps")
    run.add_argument(
        "--from", dest="from_step", metavar="STEP", help="re-run STEP and everything after it"
    )
    run.add_argument("--to", dest="to_step", metavar="STEP", help="stop after STEP")
    run.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or embedded sqlite)",
    )
    run.add_argument("--artifact-root", help="override pipeline.artifact_root")
    run.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a step another run is computing, then take it from the "
        "cache (default: fail at once)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_orchestration_args(run)
    run.add_argument(
        "--verbose",
        action="store_true",
        help="show library start-up messages (TensorFlow, absl, Beam, MLflow INFO) too",
    )
    run.add_argument(
        "--explain",
        action="store_true",
        help="print for every step whether it is cached or why it would run; run nothing",
    )
    run.set_defaults(fn=_cmd_run)


def _add_validate_and_models(sub) -> None:
    val = sub.add_parser("validate", help="check a config and print it resolved")
    _with_config(val)
    val.set_defaults(fn=_cmd_validate)

    mod = sub.add_parser("models", help="list the model zoo (from models/catalog.json)")
    mod.add_argument("--kind", choices=("classification", "segmentation", "detection"))
    mod.set_defaults(fn=_cmd_models)


def _add_predict(sub) -> None:
    pred = sub.add_parser(
        "predict",
        help="run a registered served model on image files (one line per file)",
        description=f"MODEL_URI defaults to {DEFAULT_MODEL_URI}, e.g. models:/NAME@challenger, "
        "models:/NAME/3 or runs:/RUN_ID/serving_model (RUN_ID: the register step's run). "
        "The store: --tracking-uri, else $MLFLOW_TRACKING_URI, else convflow_runs/mlflow.db "
        "in this directory or the nearest parent that has one.",
    )
    pred.add_argument("images", nargs="+", metavar="[MODEL_URI] IMAGE")
    pred.add_argument(
        "--tracking-uri",
        help="registry (default: $MLFLOW_TRACKING_URI, else the nearest convflow_runs/mlflow.db)",
    )
    pred.add_argument(
        "--trust-model",
        action="store_true",
        help="load a model convflow did not log (its MLmodel may run code: trusted models only)",
    )
    pred.add_argument(
        "--out",
        default="predictions",
        metavar="DIR",
        help="where a task that draws its answer (segmentation: mask + overlay PNGs) writes "
        "them (default: ./predictions; inputs are never overwritten)",
    )
    thresholds = {
        "--score-threshold": "smallest score kept",
        "--iou-threshold": "NMS suppresses same-class boxes overlapping more",
    }
    for flag, what in thresholds.items():
        pred.add_argument(
            flag, type=float, metavar="X",
            help=f"detection models: {what} (0..1; default: the evaluate step's setting)",
        )  # fmt: skip
    pred.set_defaults(fn=_cmd_predict)


def parser() -> argparse.ArgumentParser:
    """The ``convflow`` argument parser: one sub-command per verb."""
    ap = argparse.ArgumentParser(prog="convflow", description=__doc__)
    ap.add_argument("--version", action=_VersionAction)
    sub = ap.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_validate_and_models(sub)
    _add_predict(sub)
    scheduling.add_parser(sub, _with_config)
    exporters.add_parser(sub, _with_config)
    ui.add_parser(sub)
    sweep_command.add_parser(sub)
    registry_commands.add_commands(sub)
    return ap


def _dispatch(argv: list[str] | None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if not getattr(args, "verbose", False):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "predict":
        first = args.images[0]
        is_uri = first.startswith(
            ("models:/", "runs:/", "file:", "mlflow-artifacts:")
        ) or os.path.isdir(first)
        if is_uri and len(args.images) == 1:
            ap.error(f"predict: no image file after the model {first}; give one or more images")
        args.model = first if is_uri else None
        args.images = args.images[1:] if args.model else args.images
    try:
        return args.fn(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C, or `convflow schedule` stopping a run past its grace
        print("error: interrupted; published steps are kept: re-run to resume", file=sys.stderr)
        return 130


def stdout_closed() -> bool:
    """Whether the reader of our stdout has gone (``convflow models | head``).

    A pipe's write end polls POLLERR once no reader is left; a file or a terminal never does.
    This tells the reader leaving apart from a broken pipe elsewhere (a socket, a child), which
    is a real error and keeps its traceback.
    """
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no real descriptor (pytest's capture)
        return False
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def main(argv: list[str] | None = None) -> int:
    """The ``convflow`` console script; returns the exit code.

    When the reader of stdout leaves early (``convflow models | head``), the command stops
    quietly with 141, as a program that SIGPIPE ends does (128 + 13), instead of a traceback.
    """
    try:
        try:
            code = _dispatch(argv)
        except SystemExit:  # --help, --version, a usage error: their text may still be buffered
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a reader that left shows here, not in Python's exit-time flush
        return code
    except BrokenPipeError:
        if not stdout_closed():
            raise
        # Python's recipe (docs: signal, "Note on SIGPIPE"): what is still buffered goes to
        # /dev/null, so the flush at exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_SIGPIPE


def entry() -> None:
    """The console script: :func:`main`, then a quick exit (see pipelines/fastexit.py)."""
    from convflow.pipelines.fastexit import exit_now

    exit_now(main())


if __name__ == "__main__":
    entry()
