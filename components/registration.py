"""Registry writes exactly once: find a version by model fingerprint; check the effect holds.

Every version register creates carries ``convflow.model_fingerprint``, the content
fingerprint of the trained Model artifact it serves. Before creating a version, register
looks for one with the same fingerprint and reuses it (only the aliases are applied again),
so a crash between "version created" and "aliases set", or an evaluate setting that only
changes a report, never registers the same network twice.

On a cache hit the runner asks :func:`effect_gone` whether the registration still exists:
the version (with this fingerprint) and every alias the step recorded. An alias that now
points at another version was moved by a later run or a rollback, which is not a fault; an
alias that is gone, a deleted version or model, or a fresh database at the same address is,
and the step runs again.

MLflow is imported inside the functions: the runner imports this module through the
register step's declaration, which must stay light for ``convflow validate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MODEL_FINGERPRINT_TAG = "convflow.model_fingerprint"
REGISTRATION_FILE = "registration.json"


def find_version(client, name: str, fingerprint: str):
    """The oldest READY version of ``name`` tagged with ``fingerprint``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'", max_results=10_000)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    same = [
        v
        for v in versions
        if v.tags.get(MODEL_FINGERPRINT_TAG) == fingerprint and v.status in ("READY", None)
    ]
    return min(same, key=lambda v: int(v.version)) if same else None


def _missing_sqlite(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return f"the tracking store {path} does not exist"
    return None


def effect_gone(outputs: Mapping[str, Any], facts: Mapping[str, Any]) -> str | None:
    """Why the published registration no longer holds in the registry (None: it holds)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    record = json.loads((outputs["registration"].path / REGISTRATION_FILE).read_text())
    uri = str(facts.get("tracking_uri") or record.get("registry_uri") or "")
    if gone := _missing_sqlite(uri):
        return gone
    name, version = record["model_name"], str(record["version"])
    client = MlflowClient(uri, registry_uri=uri)
    try:
        mv = client.get_model_version(name, version)
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return f"version {version} of registered model {name!r} is gone from {uri}"
        raise
    fingerprint = record.get("model_fingerprint")
    if fingerprint and mv.tags.get(MODEL_FINGERPRINT_TAG) != fingerprint:
        return f"version {version} of {name!r} now holds another model (a re-created registry?)"
    for alias in record.get("aliases", []):
        if alias not in model.aliases:
            return f"alias @{alias} of {name!r} is gone (it pointed at version {version})"
    return None


def finalize_pending_models(experiment_id: str) -> int:
    """LoggedModels left PENDING by a run that is no longer RUNNING are marked FAILED.

    A run killed while logging its model leaves the LoggedModel PENDING for ever; the
    runner calls this after marking dead runs KILLED.

    Returns:
        How many were marked.
    """
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelStatus

    client = MlflowClient()
    count = 0
    page = client.search_logged_models(experiment_ids=[experiment_id], max_results=1000)
    for model in page:
        if model.status != LoggedModelStatus.PENDING:
            continue
        run_id = model.source_run_id
        status = client.get_run(run_id).info.status if run_id else "FINISHED"
        if status != "RUNNING":
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            count += 1
    return count
