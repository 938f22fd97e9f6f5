"""The register step's work: log the served model, register a version, move the aliases.

Every new version gets ``@challenger``. ``@champion`` moves only when the blessing says so
*and* the champion is still the version the blessing was decided against, re-checked under
the promotion lease (components/promotion.py); every move is recorded in the tracking store.
"""

from __future__ import annotations

import contextlib
import json

import mlflow
from convflow.components.base import ComponentError, Context
from convflow.components.examples import ExamplesInfo
from convflow.components.promotion import alias_version, move_alias, promote
from convflow.components.register.spec import BLESSING_FILE, REGISTRATION_FILE
from convflow.components.registration import MODEL_FINGERPRINT_TAG, find_version
from convflow.components.serving import CHALLENGER, CHAMPION
from convflow.components.serving.mlflow_io import (
    lineage_tags,
    log_serving_model,
    tracking,
)
from convflow.components.serving.model import serving_model_for
from mlflow import MlflowClient


@contextlib.contextmanager
def step_run(run_id: str | None):
    """Makes the step's MLflow run the active one (fluent ``log_model`` logs there)."""
    active = mlflow.active_run()
    if active is not None and run_id in (None, active.info.run_id):
        yield active
        return
    with mlflow.start_run(run_id=run_id, nested=active is not None) as run:
        yield run


def read_blessing(ctx: Context) -> dict:
    path = ctx.inputs["blessing"].path / BLESSING_FILE
    if not path.exists():
        raise ComponentError(f"{path} is missing: wire register to the evaluate step's blessing")
    return json.loads(path.read_text())


def served_settings(ctx: Context) -> dict | None:
    """The blessing's serving settings, plus ``probabilities`` when register.probabilities."""
    settings = ctx.inputs["blessing"].properties.get("serving_settings")
    if ctx.params.probabilities:
        settings = {**(settings or {}), "probabilities": True}
    return settings


def _create_version(ctx: Context, client, name: str, examples, tags: dict):
    """Logs the served model to the step's run and registers it; (version, logged URI)."""
    # The evaluate step's served post-processing (detection's NMS thresholds), so the
    # registered model is the one that was evaluated.
    settings = served_settings(ctx)
    serving = serving_model_for(ctx.inputs["model"], examples, ctx.task, settings)
    with step_run(ctx.tracker.run_id):
        class_names = ExamplesInfo.of(examples).class_names
        logged_uri = log_serving_model(serving, class_names, ctx.task).model_uri
    mv = mlflow.register_model(
        logged_uri,
        name,
        await_registration_for=ctx.params.await_registration_s,
        tags=tags,
    )
    if ctx.params.description:
        client.update_model_version(name, mv.version, description=ctx.params.description)
    return mv, logged_uri


def _tags(ctx: Context, blessing: dict) -> dict:
    """The version's lineage tags, the blessing's reasons and the model fingerprint."""
    tags = lineage_tags(ctx.pipeline, ctx.inputs["examples"].fingerprint, blessing["blessed"])
    tags["convflow.blessing"] = "; ".join(blessing.get("reasons", []))[:5000]
    fingerprint = ctx.inputs["model"].fingerprint
    if ctx.params.probabilities:  # another served graph of the same network: its own version
        fingerprint += "+probabilities"
    tags[MODEL_FINGERPRINT_TAG] = fingerprint
    return tags


def _register(ctx: Context, name: str, blessing: dict, tags: dict) -> dict:
    """Finds or creates the version, then moves ``@challenger`` and, if blessed, ``@champion``.

    Returns:
        the registration record without its tags (version, URIs, aliases, blessing, promotion).
    """
    fingerprint = tags[MODEL_FINGERPRINT_TAG]
    with tracking(ctx.pipeline.get("tracking_uri")):
        client = MlflowClient()
        mv = find_version(client, name, fingerprint)
        reused = mv is not None
        if reused:  # registered before (a crash before the aliases, or a re-run): reuse it
            logged_uri = mv.source
        else:
            mv, logged_uri = _create_version(ctx, client, name, ctx.inputs["examples"], tags)
        run_id, trigger = ctx.pipeline.get("run_id", ""), ctx.pipeline.get("trigger", "")
        move_alias(
            client,
            name,
            CHALLENGER,
            str(mv.version),
            from_version=alias_version(client, name, CHALLENGER),
            reason="new version",
            run_id=run_id,
            trigger=trigger,
        )
        promoted, reason = promote(
            client, name, str(mv.version), blessing, run_id=run_id, trigger=trigger
        )
        is_champion = alias_version(client, name, CHAMPION) == str(mv.version)
        if is_champion and not promoted:
            reason = f"already champion (version {mv.version})"
        client.set_model_version_tag(name, mv.version, "convflow.promotion", reason)
        return {
            "model_name": name,
            "version": str(mv.version),
            "model_uri": f"models:/{name}/{mv.version}",
            "logged_model_uri": logged_uri,
            "model_fingerprint": fingerprint,
            "reused": reused,
            "aliases": [CHALLENGER, *([CHAMPION] if is_champion else [])],
            "blessed": bool(blessing["blessed"]),
            "promoted": promoted,
            "reason": reason,
            "registry_uri": mlflow.get_registry_uri(),
        }


def _publish(ctx: Context, record: dict) -> None:
    """Writes registration.json, logs it and the version to the step's run, fills properties."""
    out = ctx.outputs["registration"].path / REGISTRATION_FILE
    out.write_text(json.dumps(record, indent=1))
    ctx.tracker.log_artifact(out)
    version, promoted = record["version"], record["promoted"]
    ctx.tracker.set_tags({"registered_version": version, "promoted": str(promoted)})
    ctx.log_metrics({"registered_version": float(version), "promoted": float(promoted)})
    ctx.outputs["registration"].properties.update(
        {k: record[k] for k in ("model_name", "version", "model_uri", "aliases", "promoted")}
    )


def run(ctx: Context) -> None:
    """Logs the served model to the step's run and registers it under pipeline.model_name.

    Raises:
        ComponentError: no pipeline.model_name, or no blessing file.
    """
    name = ctx.pipeline.get("model_name")
    if not name:
        raise ComponentError("pipeline.model_name is not set; name the registered model there")
    blessing = read_blessing(ctx)
    tags = _tags(ctx, blessing)
    record = {**_register(ctx, name, blessing, tags), "tags": tags}
    _publish(ctx, record)
    how = "reused" if record["reused"] else "created"
    aliases, reason = ", @".join(record["aliases"]), record["reason"]
    print(f"register: {name} version {record['version']} ({how}) -> @{aliases} ({reason})")
