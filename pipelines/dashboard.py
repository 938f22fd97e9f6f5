"""What the MLflow UI shows of a pipeline run: one row per pipeline run that says it all.

- **View.** MLflow 3.17's UI decides GenAI vs. model-training view from a per-browser
  toggle (``localStorage["mlflow.workflowType_v1"]``, GenAI for a first visit), overridden by
  the URL parameter ``workflowType=machine_learning``; the experiment tag
  ``mlflow.experimentKind`` only classifies the experiment (no "which kind?" prompt). So
  experiments are tagged, and every link convflow prints carries the URL parameter
  (:func:`ui_url`); ``convflow ui`` serves a store and prints that link. The runs table
  shows no metric column until one is picked, so the link also names a *shared view* (an
  experiment tag ``mlflow.sharedViewState.convflow``, MLflow's "share view" format) whose
  columns are the headline metric, blessing, version, aliases, cache and key params.
- **Parent run.** Headline metrics (the task's blessing metric and the evaluation summary),
  blessed, registered version and aliases, key params, a readable name, cache tags, the
  dataset (``log_inputs``, digest = the ingest fingerprint) and the logged model
  (``log_outputs``) fill the runs table's metric, Dataset and Models columns.
- **Cache hits don't clutter.** A cached step gets no nested run; the parent names the run
  that produced each cached artifact (``convflow.cached_from.<step>``). The parent logs
  metrics only when its own evaluation ran, so a training's figures appear once in the chart
  view however many cached invocations follow; the figures of a cached invocation are tags.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from convflow.components.base import EXAMPLES, RAW_EXAMPLES
from convflow.components.insert_race import retried_once_on_insert_race

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
SHARED_VIEW_KEY = "convflow"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARED_VIEW_KEY}"
ML_VIEW_QUERY = f"workflowType=machine_learning&viewStateShareKey={SHARED_VIEW_KEY}"
# The runs table's columns in the shared view (MLflow's "Columns" ids).
ROW_TAGS = ("blessed", "registered_version", "aliases", "cache", "trigger")
CACHED_FROM = "convflow.cached_from."
METRIC_NAMES_TAG = "convflow.metric_names"
DEFAULT_HEADLINE = "accuracy"
# Parent-run params: (params field of any step, column name). Short names sort together.
KEY_PARAMS = (
    ("model", "model"),
    ("epochs", "epochs"),
    ("precision", "precision"),
    ("steps", "preprocessing"),
    ("batch_size", "batch_size"),
    ("optimizer", "optimizer"),
    ("learning_rate", "learning_rate"),
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def metric_key(name: str) -> str:
    """A stable MLflow metric key: runs of characters other than ``[A-Za-z0-9_.-]`` -> ``_``.

    ``/`` and spaces are legal in MLflow keys, but ``/`` groups charts by prefix
    (``f1_T-shirt/top`` lands in a ``f1_T-shirt`` section), so both are replaced; accents are
    dropped (``Été`` -> ``Ete``).
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _UNSAFE.sub("_", ascii_name).strip("_") or "_"


def sanitize_metrics(metrics: Mapping[str, float]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics under :func:`metric_key` names, {new key: original name} for changed ones)."""
    out, renamed = {}, {}
    for name, value in metrics.items():
        key = metric_key(name)
        out[key] = value
        if key != name:
            renamed[key] = name
    return out, renamed


def prefer_model_training_view(client, experiment_id: str) -> None:
    """Tags an experiment as model training unless someone already chose its kind."""
    exp = client.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in exp.tags:
        # Two pipelines tag a new experiment at once (components/insert_race.py).
        retried_once_on_insert_race(
            client.set_experiment_tag, experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
        )


def shared_view(headline_metric: str) -> str:
    """The shared view's JSON: the row's columns, newest run first."""
    columns = ["attributes.`Dataset`", "attributes.`Models`", f"metrics.`{headline_metric}`"]
    columns += [f"tags.`{t}`" for t in ROW_TAGS]
    columns += [f"params.`{column}`" for _, column in KEY_PARAMS]
    view = {"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False}
    return json.dumps(view)


def share_view(client, experiment_id: str, headline_metric: str) -> None:
    """Writes (or updates) the experiment's convflow view for its headline metric."""
    value = shared_view(headline_metric)
    if client.get_experiment(experiment_id).tags.get(SHARED_VIEW_TAG) != value:
        retried_once_on_insert_race(
            client.set_experiment_tag, experiment_id, SHARED_VIEW_TAG, value
        )


def ui_url(base: str, experiment_id: str) -> str:
    """The link that opens an experiment's runs table in the model-training view, with the
    convflow columns (:func:`shared_view`)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML_VIEW_QUERY}"


def ui_command(tracking_uri: str) -> str:
    """The shell command that serves the UI of ``tracking_uri`` (sqlite) or names the server."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri
    return f"convflow ui --tracking-uri {tracking_uri}"


def run_name(pipeline_name: str, sections: Mapping[str, Any], config_hash: str) -> str:
    """``fashion_mnist_lenet · lenet5 · 3e2f``: pipeline, model, short config hash."""
    models = [p.model for p in sections.values() if hasattr(p, "model")]
    parts = [pipeline_name, *(str(m) for m in models[:1]), config_hash[:4]]
    return " · ".join(parts)


def key_params(sections: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, str]:
    """The parent's params: model, epochs, precision (as resolved), preprocessing, ..."""
    out: dict[str, str] = {}
    for field, column in KEY_PARAMS:
        for params in sections.values():
            if hasattr(params, field) and column not in out:
                value = getattr(params, field)
                out[column] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    model = _first(outputs, "Model")
    if model is not None and model.properties.get("precision"):
        out["precision"] = str(model.properties["precision"])
    return out


def _first(outputs: Mapping[str, Any], type_name: str):
    return next((a for a in outputs.values() if getattr(a, "type", None) == type_name), None)


def step_outputs(store, results: Iterable) -> tuple[dict[str, Any], dict[str, dict]]:
    """({"step.output": Artifact}, {step: its store record}) of every ran or cached step."""
    artifacts, records = {}, {}
    for r in results:
        if r.status not in ("ran", "cached") or not r.key:
            continue
        records[r.name] = store.record(r.name, r.key)
        for name, artifact in store.outputs(r.name, r.key).items():
            artifacts[f"{r.name}.{name}"] = artifact
    return artifacts, records


def cache_tags(results: Iterable, records: Mapping[str, dict]) -> dict[str, str]:
    """``cache`` = hit | miss | partial, and the run that produced each cached artifact."""
    statuses = {r.name: r.status for r in results if r.status in ("ran", "cached")}
    tags = {f"convflow.cache.{n}": "hit" if s == "cached" else "miss" for n, s in statuses.items()}
    for name, status in statuses.items():
        producer = records.get(name, {}).get("mlflow_run_id")
        if status == "cached" and producer:
            tags[f"{CACHED_FROM}{name}"] = producer
    kinds = set(statuses.values())
    tags["cache"] = "hit" if kinds == {"cached"} else "miss" if kinds == {"ran"} else "partial"
    return tags


def headline(artifacts: Mapping[str, Any], metric: str = DEFAULT_HEADLINE) -> dict[str, Any]:
    """The figures of one row: the task's blessing ``metric`` and its value, the evaluation
    summary, blessed, registered version and aliases."""
    evaluation = _first(artifacts, "Evaluation")
    blessing = _first(artifacts, "Blessing")
    registration = _first(artifacts, "Registration")
    out: dict[str, Any] = {"metric": metric}
    if evaluation is not None:
        metrics = evaluation.properties.get("metrics") or {}
        out["value"] = metrics.get(metric)
        out["metrics"] = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    if blessing is not None:
        out["blessed"] = bool(blessing.properties.get("blessed"))
    if registration is not None:
        props = registration.properties
        out.update(model_name=props.get("model_name"), version=props.get("version"))
        out["aliases"] = list(props.get("aliases") or [])
    return out


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def dataset_entity(artifacts: Mapping[str, Any], records: Mapping[str, dict], name: str):
    """An MLflow Dataset for the ingested Examples: digest = their fingerprint, split sizes."""
    from mlflow.entities import Dataset

    # The source step's raw examples (EXAMPLES: the untyped kind of fake test pipelines).
    ingested = next(
        (
            a
            for k, a in artifacts.items()
            if a.type in (RAW_EXAMPLES, EXAMPLES)
            and not records.get(k.split(".")[0], {}).get("inputs")
        ),
        None,
    )
    if ingested is None:
        return None
    props = ingested.properties
    splits = {s: int(v.get("count", 0)) for s, v in (props.get("splits") or {}).items()}
    profile = {
        "num_examples": sum(splits.values()),
        "splits": splits,
        "num_classes": props.get("num_classes"),
        "image_shape": props.get("image_shape"),
    }
    source = {"uri": ingested.uri, "format": props.get("source", "examples")}
    return Dataset(
        name=name,
        digest=ingested.fingerprint[:36],
        source_type="local",
        source=json.dumps(source),
        schema=json.dumps({"class_names": props.get("class_names", [])}),
        profile=json.dumps(profile),
    )


def dataset_name(sections: Mapping[str, Any]) -> str:
    """The ingested data's name: the TFDS name, the folder's or the IDX files' directory."""
    from pathlib import Path

    for p in sections.values():
        source = getattr(p, "source", None)
        if source == "tfds" and getattr(p, "tfds_name", None):
            return str(p.tfds_name)
        if source == "folder" and getattr(p, "folder", None):
            return Path(p.folder).name
        if source == "idx" and hasattr(p, "idx"):
            return Path(p.idx.train_images).parent.name
        if source:
            return str(source)
    return "examples"


def summarize(
    client, run_id: str, store, results, sections: Mapping[str, Any], metric: str
) -> dict:
    """Writes the parent run's row (see module docstring); returns :func:`headline`.

    ``metric`` is the task's blessing metric (``Task.blessing_metric``), the row's headline.
    """
    from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag

    artifacts, records = step_outputs(store, results)
    head = headline(artifacts, metric)
    share_view(client, client.get_run(run_id).info.experiment_id, head["metric"])
    tags = cache_tags(results, records)
    if "blessed" in head:
        tags["blessed"] = str(head["blessed"]).lower()
    if head.get("version"):
        tags["registered_version"] = str(head["version"])
        tags["aliases"] = " ".join(f"@{a}" for a in head.get("aliases", []))
    if head.get("value") is not None:
        tags[f"convflow.{head['metric']}"] = f"{head['value']:.4f}"
    dataset = dataset_entity(artifacts, records, dataset_name(sections))
    if dataset is not None:
        context = InputTag("mlflow.data.context", "training")
        # Parallel sweep points log the same dataset at once (components/insert_race.py).
        datasets = [DatasetInput(dataset, [context])]
        retried_once_on_insert_race(client.log_inputs, run_id, datasets=datasets)
    model_id = _model_id(client, head) if _ran(results, "Registration", artifacts) else None
    if model_id:
        from mlflow.entities import LoggedModelOutput

        tags["convflow.model_id"] = model_id
        model_id = row_model(client, run_id, head, model_id, key_params(sections, artifacts))
        client.log_outputs(run_id, [LoggedModelOutput(model_id, 0)])
    metrics = []
    if _ran(results, "Evaluation", artifacts) and head.get("metrics"):
        now = int(time.time() * 1000)
        linked = {"model_id": model_id} if model_id else {}
        if linked and dataset is not None:
            linked.update(dataset_name=dataset.name, dataset_digest=dataset.digest)
        safe, _ = sanitize_metrics(head["metrics"])
        metrics = [Metric(k, v, now, 0, **linked) for k, v in safe.items()]
        if head.get("version"):
            metrics.append(Metric("registered_version", float(head["version"]), now, 0))
    # A run group's parent (steps run one by one, e.g. from Airflow) already has the params
    # an earlier step logged; MLflow refuses a changed value (precision: auto -> resolved).
    logged = client.get_run(run_id).data.params
    params = [Param(k, v) for k, v in key_params(sections, artifacts).items() if k not in logged]
    client.log_batch(
        run_id, metrics=metrics, params=params, tags=[RunTag(k, v) for k, v in tags.items()]
    )
    return head


def row_model(client, run_id: str, head: Mapping[str, Any], served_id: str, params) -> str:
    """A LoggedModel record whose source is the parent run; returns its id.

    MLflow 3.17's Models column lists the logged models whose *source run* is the row's run,
    and the served model's source is the register step's run. This record (no artifacts of
    its own) names the served model and the registered version, so the parent's row shows
    the model and the model's page shows its metrics and params.
    """
    from mlflow.entities import LoggedModelStatus

    exp_id = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(
        exp_id,
        name=str(head["model_name"]),
        source_run_id=run_id,
        tags={
            "convflow.served_model_id": served_id,
            "convflow.registered_version": f"models:/{head['model_name']}/{head['version']}",
        },
        params={k: str(v) for k, v in params.items()},
        model_type="convflow.pipeline_run",
    )
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


def _ran(results, type_name: str, artifacts: Mapping[str, Any]) -> bool:
    ran = {r.name for r in results if r.status == "ran"}
    return any(a.type == type_name and k.split(".")[0] in ran for k, a in artifacts.items())


def _model_id(client, head: Mapping[str, Any]) -> str | None:
    """The LoggedModel behind the registered version (MLflow 3 links versions to models)."""
    if not head.get("model_name") or not head.get("version"):
        return None
    version = client.get_model_version(head["model_name"], str(head["version"]))
    source = version.source or ""
    # A version registered from models:/m-<id> names its LoggedModel in the source.
    from_source = source.removeprefix("models:/") if source.startswith("models:/m-") else None
    return getattr(version, "model_id", None) or from_source


def result_line(head: Mapping[str, Any], tracking_uri: str, experiment_id: str) -> str:
    """The one line after the summary table: figure, blessing, version, how to look."""
    parts = []
    if head.get("value") is not None:
        parts.append(f"{head['metric']} {head['value']:.4f}")
    if "blessed" in head:
        parts.append("blessed" if head["blessed"] else "not blessed")
    if head.get("version"):
        aliases = " ".join(f"@{a}" for a in head.get("aliases", []))
        parts.append(f"{head['model_name']} v{head['version']} {aliases}".rstrip())
    if tracking_uri.startswith(("http://", "https://")):
        parts.append(f"UI: {ui_url(tracking_uri, experiment_id)}")
    else:
        parts.append(f"UI: {ui_command(tracking_uri)}")
    return "result: " + " · ".join(parts)
