"""MLflow: the embedded default store, the reachability check, and the component tracker.

One experiment per pipeline, one parent run per pipeline run, one nested run per step.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from convflow.pipelines import embedded
from convflow.pipelines.dashboard import METRIC_NAMES_TAG, sanitize_metrics

EMBEDDED_DIR = Path("convflow_runs")
# Two budgets against a server. Before any step: one short request, so a server that is down
# or accepts connections but never answers fails the run in seconds. Once the run is under
# way: retries with exponential backoff long enough to ride out a restart (14-22 s here).
PREFLIGHT_ENV, RETRY_ENV = "CONVFLOW_TRACKING_PREFLIGHT_S", "CONVFLOW_TRACKING_RETRY_S"
PREFLIGHT_S, RETRY_S = 10, 90
REQUEST_TIMEOUT_S = 30


def retry_schedule(budget_s: float) -> tuple[int, float]:
    """(retries, seconds of backoff they wait) covering ``budget_s`` with MLflow's client.

    urllib3 (which MLflow's client uses) sleeps 0, 2, 4, 8, ... s before retries 1, 2, 3, ...
    at backoff factor 1; MLflow allows at most 10 retries.
    """
    waited, retries = 0.0, 0
    while waited < budget_s and retries < 10:
        retries += 1
        waited += 0 if retries == 1 else 2 ** (retries - 1)
    return retries, waited


def _budget(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise TrackingUnavailable(f"{name}={raw!r} is not a number of seconds") from None


def run_http_settings() -> dict[str, str]:
    """MLflow client settings for a run under way (a user's own MLFLOW_HTTP_* win)."""
    retries, _ = retry_schedule(_budget(RETRY_ENV, RETRY_S))
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S),
    }


class TrackingUnavailable(Exception):
    """The tracking server cannot be reached; the message says what to do."""


def resolve_uri(uri: str | None, create: bool = True) -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments or None to let the server pick).

    ``create=False`` leaves the file system alone (``run --explain``).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri and uri.startswith("sqlite:///"):
        # Artifacts beside the database, not in MLflow's default ./mlruns of the cwd.
        db = Path(uri.removeprefix("sqlite:///")).absolute()
        return uri, (db.parent / "mlartifacts").as_uri()
    if uri:
        return uri, None
    root = EMBEDDED_DIR.absolute()
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def connect(uri: str | None) -> tuple[str, str | None]:
    """Points MLflow at ``uri`` (or the embedded store) and checks it answers."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, artifact_location = resolve_uri(uri)
    # The summary table already names the run; MLflow's per-run "View run at" lines are noise.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        with _schema_lock(uri):  # sqlite: created atomically, or repaired, by one process
            embedded.ensure(uri, artifact_location)
    except embedded.StoreBroken as e:
        raise TrackingUnavailable(str(e)) from None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    remote = uri.startswith(("http://", "https://"))
    try:
        if remote:
            _preflight(uri, _budget(PREFLIGHT_ENV, PREFLIGHT_S))
            for k, v in run_http_settings().items():
                os.environ.setdefault(k, v)
        with _schema_lock(uri):
            client = MlflowClient(uri, registry_uri=uri)
            client.search_experiments(max_results=1)
            if uri.startswith("sqlite:"):
                client.search_registered_models(max_results=1)
    except TrackingUnavailable:
        raise
    except Exception as e:
        reason = str(e).splitlines()[0][:200]
        if embedded.sqlite_path(uri) is not None:
            raise TrackingUnavailable(
                f"the MLflow sqlite store {uri} cannot be used ({reason}); move it away to "
                "start a new one, or pass --tracking-uri"
            ) from None
        raise TrackingUnavailable(
            f"MLflow tracking store {uri} is unreachable ({reason}); start the server "
            "(see mlflow/README.md) or drop --tracking-uri to use the embedded store"
        ) from None
    return uri, artifact_location


def _preflight(uri: str, timeout_s: float) -> None:
    """One request to the server's /health, no retries: any HTTP answer will do.

    A server that is down, or that accepts connections and never answers, fails here within
    ``timeout_s``; the run's own calls then get the long budget (:func:`run_http_settings`).
    """
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
    except requests.RequestException as e:
        kind = "no answer" if isinstance(e, requests.Timeout) else type(e).__name__
        raise TrackingUnavailable(
            f"MLflow tracking store {uri} is unreachable ({kind} within {timeout_s:g} s); "
            "start the server (see mlflow/README.md) or drop --tracking-uri to use the "
            "embedded store"
        ) from None


@contextlib.contextmanager
def _schema_lock(uri: str):
    """Holds ``<db>.lock`` while a sqlite store is opened first in this process.

    Opening a new sqlite file makes MLflow create and migrate its schema; two processes doing
    it at once (two pipelines sharing one fresh database) fail with "duplicate column". The
    lock makes one create and migrate while the other waits and then finds it done.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///")).absolute()
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def experiment_id(name: str, artifact_location: str | None) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as e:
        # Another run created it between our read and our create (two pipelines starting
        # at once on one server): theirs is ours too.
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


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
        if not embedded.alive(int(tags["convflow.pid"])):
            client.set_terminated(run.info.run_id, status="KILLED")
            count += 1
    return count


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
        self._pending: list = []  # mlflow.entities.Metric values not yet accepted
        self._warned = False
        self._names_unsent = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Sends metrics; when the server is away past the retry budget they are kept and
        sent with the next call or by :meth:`flush` (training goes on meanwhile)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics, renamed = sanitize_metrics(metrics)
        if renamed.keys() - self._renamed.keys():
            self._renamed.update(renamed)  # the original names, e.g. "f1_T-shirt/top"
            self._names_unsent = True
        for k, v in metrics.items():
            # A final value (no step) lands on the curve's last point, not back at step 0.
            at = self._last_step.get(k, 0) if step is None else step
            self._last_step[k] = max(at, self._last_step.get(k, 0))
            self._pending.append(Metric(k, float(v), now, at))
        try:
            self.flush()
        except Exception as e:  # any transport error: keep them for later
            if not self._warned:
                print(
                    f"warning: MLflow is not answering ({str(e).splitlines()[0][:120]}); "
                    f"keeping {len(self._pending)} metric values to send later",
                    file=sys.stderr,
                    flush=True,
                )
                self._warned = True

    def flush(self) -> None:
        """Sends the metrics kept back; raises when the server still does not answer."""
        if self._names_unsent:
            self.set_tags({METRIC_NAMES_TAG: json.dumps(self._renamed)[:5000]})
            self._names_unsent = False
        while self._pending:
            batch = self._pending[:1000]
            self.client.log_batch(self.run_id, metrics=batch)
            del self._pending[: len(batch)]
        self._warned = False

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
