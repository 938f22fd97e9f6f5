"""``convflow ui``: serve the MLflow UI of a store and print links to its model-training view."""

from __future__ import annotations

import subprocess
import sys

from convflow.pipelines import dashboard


def add_parser(sub) -> None:
    """Adds the ``ui`` subcommand to the ``convflow`` parser."""
    ui = sub.add_parser(
        "ui",
        help="serve the MLflow UI of a store (default: the embedded one)",
        description="Starts `mlflow server` on the store and prints, for each pipeline "
        "experiment, the link that opens its runs table in MLflow's model-training view.",
    )
    ui.add_argument(
        "--tracking-uri", help="store to serve (default: $MLFLOW_TRACKING_URI or embedded sqlite)"
    )
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(fn=_cmd_ui)


def links(tracking_uri: str, base: str) -> list[str]:
    """``name: url`` for every experiment convflow tagged as model training, newest first."""
    from mlflow import MlflowClient

    exps = MlflowClient(tracking_uri).search_experiments(
        filter_string=f"tags.`{dashboard.EXPERIMENT_KIND_TAG}` = '{dashboard.MODEL_TRAINING_KIND}'",
        order_by=["last_update_time DESC"],
    )
    return [f"{e.name}: {dashboard.ui_url(base, e.experiment_id)}" for e in exps]


def _cmd_ui(args) -> int:
    from convflow.pipelines.tracking import resolve_uri

    uri, _ = resolve_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        print(f"error: {uri} is a server already; open it in a browser", file=sys.stderr)
        return 2
    base = f"http://{args.host}:{args.port}"
    for line in links(uri, base) or [f"(no pipeline runs yet) {base}"]:
        print(line, flush=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port), "--workers", "1"]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0
