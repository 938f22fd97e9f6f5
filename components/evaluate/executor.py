"""The evaluate step's work: the task's metrics and plots, and the blessing.

The task evaluates two views of the same images (its :meth:`Task.evaluate`): the trained
network on the transformed split, and the *served* model (preprocessing + network + head) on
the raw split, which yields ``serving_<blessing metric>``. The champion in the registry is a
served model that takes raw images, so the challenger is compared with it on the second view:
both served models, the same raw images, the same targets, the task's blessing metric.

Outputs: ``Evaluation`` (metrics.json, per_class.json, the task's plots) and ``Blessing``
(blessing.json: the verdict and every reason).
"""

from __future__ import annotations

import json

from convflow.components.base import BLESSING_FILE, ComponentError, Context
from convflow.components.evaluate.blessing import ChampionResult, decide
from convflow.components.evaluate.spec import (
    METRICS_FILE,
    PER_CLASS_FILE,
    THRESHOLDS,
    EvaluateParams,
)
from convflow.components.examples import ExamplesInfo, read_split
from convflow.components.registration import MODEL_FINGERPRINT_TAG
from convflow.components.serving.mlflow_io import current_champion, load_served, tracking
from convflow.components.serving.model import load_network, serving_model_for
from convflow.components.tasks import EvalInputs, Task


def evaluate_champion(
    task: Task, model_name: str, images, targets, class_names, batch_size, fingerprint=None
):
    """The champion's blessing metric on the same raw images, or None without a champion
    (or when the champion is this very model, ``fingerprint``: it is not compared with
    itself, as after a re-run for a report-only setting).

    Raises:
        ComponentError: the champion does not load, or predicts other classes.
    """
    version = current_champion(model_name)
    if version is None:
        return None
    if fingerprint and version.tags.get(MODEL_FINGERPRINT_TAG) == fingerprint:
        print(f"evaluate: @champion (version {version.version}) is this model; not compared")
        return None
    uri = f"models:/{model_name}/{version.version}"
    try:
        model, classes = load_served(uri)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:400]
        raise ComponentError(
            f"cannot load the champion {uri} ({type(e).__name__}: {first}); move @champion "
            f"off it with `convflow rollback {model_name} --to VERSION`, or set "
            "evaluate.compare_with_champion=false to promote on thresholds alone"
        ) from e
    if list(classes) != list(class_names):
        raise ComponentError(
            f"champion {uri} predicts classes {classes}, the challenger {list(class_names)}: "
            "they are not comparable; register under another pipeline.model_name"
        )
    score = task.served_score(model.predict, images, targets, batch_size)
    return ChampionResult(version=str(version.version), accuracy=score, model_uri=uri)


def _eval_inputs(ctx: Context, p: EvaluateParams) -> EvalInputs:
    examples, raw = ctx.inputs["examples"], ctx.inputs["raw_examples"]
    info = ExamplesInfo.of(examples)
    raw_images, raw_targets = read_split(raw, p.split, ctx.task)
    return EvalInputs(
        network=load_network(ctx.inputs["model"]),
        serving=serving_model_for(
            ctx.inputs["model"], examples, ctx.task, serving_settings(ctx.task, p, info)
        ),
        examples=examples,
        raw_images=raw_images,
        raw_targets=raw_targets,
        split=p.split,
        class_names=list(info.class_names),
        batch_size=p.batch_size,
        out_dir=ctx.outputs["evaluation"].path,
        settings=p,
    )


def serving_settings(task: Task, p: EvaluateParams, info: ExamplesInfo) -> dict | None:
    """The task's served post-processing settings (None for most tasks), with the class
    count; the blessing carries them to register."""
    settings = task.serving_settings(p)
    return None if settings is None else {**settings, "num_classes": info.num_classes}


def _champion(ctx: Context, p: EvaluateParams, inputs: EvalInputs) -> ChampionResult | None:
    model_name = ctx.pipeline.get("model_name")
    if not (p.compare_with_champion and model_name):
        return None
    with tracking(ctx.pipeline.get("tracking_uri")):
        return evaluate_champion(
            ctx.task,
            model_name,
            inputs.raw_images,
            inputs.raw_targets,
            inputs.class_names,
            p.batch_size,
            ctx.inputs["model"].fingerprint,
        )


def run(ctx: Context) -> None:
    """Evaluates the trained model on ``evaluate.split`` and decides its blessing.

    Raises:
        ComponentError: an empty split, or a champion that cannot be compared.
    """
    p: EvaluateParams = ctx.params
    task = ctx.task
    inputs = _eval_inputs(ctx, p)
    result = task.evaluate(inputs)
    results = dict(result.metrics)
    champion = _champion(ctx, p, inputs)
    if champion is not None:
        results[f"champion_{task.blessing_metric}"] = champion.accuracy
    blessing = decide(
        results,
        min_accuracy=getattr(p, THRESHOLDS.get(task.blessing_metric, "min_accuracy")),
        max_loss=p.max_loss,
        champion=champion,
        tolerance=p.champion_tolerance,
        metric=task.blessing_metric,
        compared=p.compare_with_champion,
        threshold_name=THRESHOLDS[task.blessing_metric],
    )
    results["blessed"] = float(blessing.blessed)

    out = ctx.outputs["evaluation"].path
    (out / METRICS_FILE).write_text(json.dumps(results, indent=1))
    (out / PER_CLASS_FILE).write_text(json.dumps(result.per_class, indent=1))
    files = [out / METRICS_FILE, out / PER_CLASS_FILE, *result.files]
    bless_dir = ctx.outputs["blessing"].path
    # register re-checks the decision under the promotion lease; it needs to know whether
    # the champion was part of it.
    decision = {**blessing.to_dict(), "compare_with_champion": p.compare_with_champion}
    (bless_dir / BLESSING_FILE).write_text(json.dumps(decision, indent=1))
    for f in [*files, bless_dir / BLESSING_FILE]:
        ctx.tracker.log_artifact(f)
    ctx.log_metrics({**results, **_mlflow_safe(_per_class_flat(result.per_class))})
    ctx.tracker.set_tags({"blessed": str(blessing.blessed).lower()})
    ctx.outputs["evaluation"].properties.update(
        split=p.split, count=result.count, metrics=results, files=[f.name for f in files]
    )
    ctx.outputs["blessing"].properties.update(
        blessed=blessing.blessed,
        reasons=blessing.reasons,
        metric=task.blessing_metric,
        champion_version=champion.version if champion else None,
        champion_accuracy=champion.accuracy if champion else None,
        challenger_accuracy=results[f"serving_{task.blessing_metric}"],
        serving_settings=serving_settings(task, p, ExamplesInfo.of(ctx.inputs["examples"])),
    )
    verdict = "BLESSED" if blessing.blessed else "NOT blessed"
    print(f"evaluate: {verdict}: " + "; ".join(blessing.reasons), flush=True)


def _per_class_flat(per_class: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        f"{m}_{name}": v
        for name, row in per_class.items()
        for m, v in row.items()
        if m != "support"
    }


def _mlflow_safe(metrics: dict[str, float]) -> dict[str, float]:
    # MLflow metric names allow [\w\-. /]; class names like "T-shirt/top" stay readable.
    return {
        "".join(c if c.isalnum() or c in "_-. /" else "_" for c in k): v for k, v in metrics.items()
    }
