"""``convflow history MODEL`` and ``convflow rollback MODEL``: the registry's alias moves."""

from __future__ import annotations

import sys

EXIT_USAGE, EXIT_FAILED = 2, 1


def _client(uri: str | None):
    from convflow.pipelines.tracking import TrackingUnavailable, connect
    from mlflow import MlflowClient

    try:
        uri, _ = connect(uri)
    except TrackingUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    return MlflowClient(uri, registry_uri=uri)


def _cmd_history(args) -> int:
    from convflow.components import alias_history

    moves = alias_history.moves(_client(args.tracking_uri), args.model, args.alias)
    if not moves:
        print(f"error: no alias moves recorded for {args.model!r}", file=sys.stderr)
        return EXIT_FAILED
    print(alias_history.table(moves))
    return 0


def _cmd_rollback(args) -> int:
    from convflow.components.lease import LeaseUnavailable
    from convflow.components.promotion import RollbackError, rollback
    from mlflow.exceptions import MlflowException

    client = _client(args.tracking_uri)
    try:
        client.get_registered_model(args.model)
        before, after = rollback(client, args.model, args.to, force=args.force, note=args.reason)
    except (RollbackError, LeaseUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except MlflowException as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        print(f"error: {args.model}: {first}", file=sys.stderr)
        return EXIT_FAILED
    print(f"rollback: {args.model}@champion {before or 'none'} -> {after}")
    return 0


def add_commands(sub) -> None:
    """Adds ``history`` and ``rollback`` to the CLI's subparsers."""
    uri_help = "registry (default: $MLFLOW_TRACKING_URI or embedded sqlite)"
    hist = sub.add_parser("history", help="alias moves of a registered model, newest first")
    hist.add_argument("model", help="registered model name")
    hist.add_argument("--alias", help="only this alias (e.g. champion)")
    hist.add_argument("--tracking-uri", help=uri_help)
    hist.set_defaults(fn=_cmd_history)

    back = sub.add_parser(
        "rollback",
        help="move @champion back to the previous champion (or --to VERSION)",
        description="Refuses a version that was never blessed unless --force. The move is "
        "recorded in the history with the reason 'rollback'.",
    )
    back.add_argument("model", help="registered model name")
    back.add_argument("--to", metavar="VERSION", help="the version to make champion")
    back.add_argument("--force", action="store_true", help="allow a never-blessed version")
    back.add_argument("--reason", default="", help="a note recorded with the move")
    back.add_argument("--tracking-uri", help=uri_help)
    back.set_defaults(fn=_cmd_rollback)
