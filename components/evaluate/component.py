"""The evaluate component: test-split metrics, plots, and the blessing.

Two views of the same test images:

- the trained network on the preprocessed split (``examples``): loss, accuracy, top-k,
  per-class precision/recall/F1, confusion matrix;
- the *served* model (preprocessor + network + softmax) on the raw split
  (``raw_examples``): ``serving_accuracy`` and the misclassified grid.

The champion in the registry is a served model that takes raw images, so the challenger is
compared with it on the second view: both served models, the same raw images, the same
labels. ``serving_accuracy`` ≈ ``accuracy`` also checks that the served preprocessing
matches the Beam job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from convflow.components.base import (
    BLESSING,
    EVALUATION,
    EXAMPLES,
    MODEL,
    ComponentError,
    Context,
    component,
    param,
)
from convflow.components.evaluate import metrics as M
from convflow.components.evaluate import plots
from convflow.components.evaluate.blessing import ChampionResult, decide
from convflow.components.examples import SPLITS, dataset, read_split
from convflow.components.serving import (
    CHAMPION,
    load_network,
    load_served,
    serving_model_for,
    tracking,
)

METRICS_FILE, PER_CLASS_FILE, BLESSING_FILE = "metrics.json", "per_class.json", "blessing.json"
CONFUSION_FILE, MISCLASSIFIED_FILE = "confusion_matrix.png", "misclassified.png"


@dataclass(frozen=True)
class EvaluateParams:
    """Resolved ``evaluate:`` section."""

    split: str = param("test", help="split to evaluate on", choices=SPLITS)
    top_k: int = param(3, help="k of the top-k accuracy", min=1)
    batch_size: int = param(1024, help="evaluation batch size", min=1)
    min_accuracy: float = param(0.0, help="bless only at or above this accuracy", min=0.0, max=1.0)
    max_loss: float | None = param(None, help="bless only at or below this loss", min=0.0)
    compare_with_champion: bool = param(True, help="also require not losing to @champion")
    champion_tolerance: float = param(
        0.0,
        help="the challenger may trail the champion's accuracy by this much",
        min=0.0,
        max=1.0,
    )
    num_misclassified: int = param(25, help="examples in misclassified.png", min=0, max=100)


def network_view(ctx: Context, p: EvaluateParams, network):
    """(probs, labels) of the trained network on the preprocessed split."""
    import keras
    import tensorflow as tf

    ds = dataset(ctx.inputs["examples"], p.split)
    labels = np.concatenate([y for _, y in ds.batch(4096).as_numpy_iterator()] or [[]])
    steps = -(-len(labels) // p.batch_size)
    images = ds.map(lambda x, y: x).batch(p.batch_size)
    images = images.apply(tf.data.experimental.assert_cardinality(steps))
    logits = network.predict(images, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(np.asarray(logits, np.float32)))
    return probs, labels.astype(np.int64)


def raw_view(ctx: Context, p: EvaluateParams) -> tuple[list | np.ndarray, np.ndarray]:
    raw = ctx.inputs["raw_examples"]
    if raw.properties.get("image_shape"):
        return read_split(raw, p.split)
    images, labels = [], []
    for image, label in dataset(raw, p.split, ragged=True).as_numpy_iterator():
        images.append(image)
        labels.append(label)
    return images, np.asarray(labels, np.int64)


def served_probs(predict, images, batch_size: int) -> np.ndarray:
    """Probabilities of a served model's ``predict`` over same-size batches or single images."""
    if isinstance(images, np.ndarray):
        chunks = [predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    else:
        chunks = [predict(image[None]) for image in images]
    return np.concatenate([np.asarray(c, np.float32) for c in chunks])


def current_champion(model_name: str):
    """The ModelVersion under @champion, or None when the model or the alias does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException as e:
        missing = e.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            e.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(e)
        )
        if missing:
            return None
        raise


def evaluate_champion(model_name, images, labels, class_names, batch_size):
    version = current_champion(model_name)
    if version is None:
        return None
    uri = f"models:/{model_name}/{version.version}"
    try:
        model, classes = load_served(uri)
    except Exception as e:
        raise ComponentError(
            f"cannot load the champion {uri} ({type(e).__name__}: {str(e)[:200]}); fix the "
            "registry or set evaluate.compare_with_champion=false"
        ) from e
    if list(classes) != list(class_names):
        raise ComponentError(
            f"champion {uri} predicts classes {classes}, the challenger {list(class_names)}: "
            "they are not comparable; register under another pipeline.model_name"
        )
    probs = served_probs(model.predict, images, batch_size)
    accuracy = float((probs.argmax(axis=1) == labels).mean())
    return ChampionResult(version=str(version.version), accuracy=accuracy, model_uri=uri)


@component(
    name="evaluate",
    inputs={"model": MODEL, "examples": EXAMPLES, "raw_examples": EXAMPLES},
    outputs={"evaluation": EVALUATION, "blessing": BLESSING},
    params=EvaluateParams,
    key_facts=("model_name", "tracking_uri"),
)
def evaluate(ctx: Context) -> None:
    """Evaluates the trained model on ``evaluate.split`` and decides its blessing."""
    p: EvaluateParams = ctx.params
    examples = ctx.inputs["examples"]
    class_names = list(examples.properties["class_names"])
    network = load_network(ctx.inputs["model"])

    probs, labels = network_view(ctx, p, network)
    if not len(labels):
        raise ComponentError(f"{examples.uri}: split {p.split!r} is empty; nothing to evaluate")
    cm = M.confusion_matrix(labels, probs.argmax(axis=1), len(class_names))
    per_class = M.per_class(cm, class_names)
    results = {**M.summary(probs, labels, p.top_k), **M.macro(per_class)}

    serving = serving_model_for(ctx.inputs["model"], examples)
    raw_images, raw_labels = raw_view(ctx, p)
    raw_probs = served_probs(lambda x: serving.predict(x, verbose=0), raw_images, p.batch_size)
    results["serving_accuracy"] = float((raw_probs.argmax(axis=1) == raw_labels).mean())

    champion = None
    if p.compare_with_champion:
        model_name = ctx.pipeline.get("model_name")
        if model_name:
            with tracking(ctx.pipeline.get("tracking_uri")):
                champion = evaluate_champion(
                    model_name, raw_images, raw_labels, class_names, p.batch_size
                )
    if champion is not None:
        results["champion_accuracy"] = champion.accuracy
    blessing = decide(
        results,
        min_accuracy=p.min_accuracy,
        max_loss=p.max_loss,
        champion=champion,
        tolerance=p.champion_tolerance,
    )
    results["blessed"] = float(blessing.blessed)

    out = ctx.outputs["evaluation"].path
    (out / METRICS_FILE).write_text(json.dumps(results, indent=1))
    (out / PER_CLASS_FILE).write_text(json.dumps(per_class, indent=1))
    files = [
        out / METRICS_FILE,
        out / PER_CLASS_FILE,
        plots.confusion_matrix(cm, class_names, out / CONFUSION_FILE),
        plots.misclassified(
            raw_images,
            raw_labels,
            raw_probs,
            class_names,
            out / MISCLASSIFIED_FILE,
            p.num_misclassified,
        ),
    ]
    bless_dir = ctx.outputs["blessing"].path
    (bless_dir / BLESSING_FILE).write_text(json.dumps(blessing.to_dict(), indent=1))
    for f in [*files, bless_dir / BLESSING_FILE]:
        ctx.tracker.log_artifact(f)
    per_class_flat = {
        f"{m}_{name}": v[m] for name, v in per_class.items() for m in ("precision", "recall", "f1")
    }
    ctx.log_metrics({**results, **_mlflow_safe(per_class_flat)})
    ctx.tracker.set_tags({"blessed": str(blessing.blessed).lower()})
    ctx.outputs["evaluation"].properties.update(
        split=p.split, count=len(labels), metrics=results, files=[f.name for f in files]
    )
    ctx.outputs["blessing"].properties.update(
        blessed=blessing.blessed,
        reasons=blessing.reasons,
        champion_version=champion.version if champion else None,
        champion_accuracy=champion.accuracy if champion else None,
        challenger_accuracy=results["serving_accuracy"],
    )
    verdict = "BLESSED" if blessing.blessed else "NOT blessed"
    print(f"evaluate: {verdict}: " + "; ".join(blessing.reasons), flush=True)


def _mlflow_safe(metrics: dict[str, float]) -> dict[str, float]:
    # MLflow metric names allow [\w\-. /]; class names like "T-shirt/top" stay readable.
    return {
        "".join(c if c.isalnum() or c in "_-. /" else "_" for c in k): v for k, v in metrics.items()
    }
