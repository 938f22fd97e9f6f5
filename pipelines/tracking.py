"""MLflow: the embedded default store, the reachability check, and the component tracker.

One experiment per pipeline, one parent run per pipeline run, one nested run per step.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convflow.pipelines.dashboard import METRIC_NAMES_TAG, sanitize_metrics

EMBEDDED_DIR = Path("convflow_runs")
# Bounded retries against a server: a dead server costs seconds, not the default minutes.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class TrackingUnavailable(Exception):
    """The tracking server cannot be reached; the message says what to do."""


def resolve_uri(uri: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments or None to let the server pick)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri.startswith("sqlite:///"):
        # Artifacts beside the database, not in MLflow's default ./mlruns of the cwd.
        db = Path(uri.removeprefix("sqlite:///")).absolute()
        return uri, (db.parent / "mlartifacts").as_uri()
    if uri:
        return uri, None
    root = EMBEDDED_DIR.absolute()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def connect(uri: str | None) -> tuple[str, str | None]:
    """Points MLflow at ``uri`` (or the embedded store) and checks it answers."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, artifact_location = resolve_uri(uri)
    # The summary table already names the run; MLflow's per-run "View run at" lines are noise.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if uri.startswith(("http://", "https://")):
        for k, v in HTTP_DEFAULTS.items():
            os.environ.setdefault(k, v)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:
        reason = str(e).splitlines()[0][:200]
        raise TrackingUnavailable(
            f"MLflow tracking store {uri} is unreachable ({reason}); start the server "
            "(see mlflow/README.md) or drop --tracking-uri to use the embedded store"
        ) from None
    return uri, artifact_location


def experiment_id(name: str, artifact_location: str | None) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def mark_orphans_killed(exp_id: str) -> int:
    """Runs left RUNNING by a convflow process that died on this host become KILLED."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    host = socket.gethostname()
    runs = client.search_runs(
        [exp_id], filter_string="attributes.status = 'RUNNING'", max_results=200
    )
    count = 0
    for run in runs:
        tags = run.data.tags
        if tags.get("convflow.host") != host or "convflow.pid" not in tags:
            continue
        if not _alive(int(tags["convflow.pid"])):
            client.set_terminated(run.info.run_id, status="KILLED")
            count += 1
    return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_tags() -> dict[str, str]:
    return {"convflow.host": socket.gethostname(), "convflow.pid": str(os.getpid())}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> {"a.b": "value"}, values as MLflow-sized strings."""
    out: dict[str, str] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)[:6000]
    return out


class MlflowTracker:
    """The Tracker a component gets: writes to its step's nested run."""

    def __init__(self, run_id: str, tracking_uri: str):
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self._last_step: dict[str, int] = {}
        self._renamed: dict[str, str] = {}

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics, renamed = sanitize_metrics(metrics)
        if renamed.keys() - self._renamed.keys():
            self._renamed.update(renamed)  # the original names, e.g. "f1_T-shirt/top"
            self.set_tags({METRIC_NAMES_TAG: json.dumps(self._renamed)[:5000]})
        items = []
        for k, v in metrics.items():
            # A final value (no step) lands on the curve's last point, not back at step 0.
            at = self._last_step.get(k, 0) if step is None else step
            self._last_step[k] = max(at, self._last_step.get(k, 0))
            items.append(Metric(k, float(v), now, at))
        self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
