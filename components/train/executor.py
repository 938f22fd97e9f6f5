"""The train step's work: a zoo model fitted on transformed Examples, resumable per epoch.

Input: ``TransformedExamples``. Output: a ``Model`` artifact (``model.keras``, the network
ending in float32 logits; the task's head is added for serving), history and plots. The
task supplies the targets' encoding, the loss and the metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import convflow.models.initializers  # noqa: F401 - registers initializers for checkpoints
import keras
from convflow.components import tasks
from convflow.components.base import ComponentError, Context
from convflow.components.examples import read_split
from convflow.components.train import (
    MODEL_FILE,
    data,
    multiworker,
    optim,
    plots,
    pretrain,
    runtime,
)
from convflow.components.train.checkpoint import EpochCheckpoint, load_state
from convflow.components.train.spec import (
    MULTI_WORKER,
    TrainParams,
    first_layer_plan,
    model_kwargs_for,
)
from convflow.models import zoo
from convflow.models.initializers import init_first_conv

HISTORY_FILE = "history.json"
SUMMARY_FILE = "model_summary.txt"
CURVES_FILE = "training_curves.png"
KERNELS_FILE = "first_layer_kernels.png"


def build_network(p: TrainParams, input_shape, num_classes: int):
    """The zoo model, ending in float32 logits (the task's head is added for serving).

    Raises:
        ComponentError: an unknown model or arguments its builder rejects.
    """
    kwargs = model_kwargs_for(p.model, p.model_kwargs, zoo.list_models())
    try:
        return zoo.build(
            p.model,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            classifier_activation=None,
            **kwargs,
        )
    except KeyError as e:
        raise ComponentError(f"train.model={p.model!r}: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise ComponentError(
            f"train.model={p.model!r} with model_kwargs {kwargs}: {e}; key arguments by model "
            "(model_kwargs: {lenet5: {filters: [16, 32]}}) so they apply only to that model"
        ) from None


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """``train: epoch 3/10 loss 0.4120 accuracy 0.8512 val_loss ... (12.3 s)``."""
    seconds = logs.get("epoch_seconds")
    figures = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "epoch_seconds")
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    return f"train: epoch {epoch}/{epochs} {figures}{took}"


def _check_monitor(p: TrainParams, has_validation: bool) -> TrainParams:
    if p.early_stopping.monitor.startswith("val_") and not has_validation:
        if p.early_stopping.patience:
            raise ComponentError(
                f"train.early_stopping.monitor={p.early_stopping.monitor!r} needs a validation "
                "split, and the Examples have none: monitor 'loss' or add a validation split"
            )
        # Not stopping early, the monitor only picks "best epoch" for the record.
        return replace(p, early_stopping=replace(p.early_stopping, monitor="loss"))
    return p


def _first_layer(model, p: TrainParams, examples) -> dict:
    """Sets up the first convolution as ``train.first_layer`` (or ``first_layer_init``) says:
    kernels from an initializer or an autoencoder, then frozen or not. Returns the facts to
    record (mode, pretraining losses, a digest of the kernel the supervised stage starts from).
    """
    init, frozen, pretrains = first_layer_plan(p)
    name = zoo.get_spec(p.model).first_conv
    if name is None:
        raise ComponentError(
            f"train.first_layer={p.first_layer!r}: {p.model} has no 2-D first convolution"
        )
    facts = {"mode": p.first_layer, "frozen": frozen}
    try:
        if init is not None:
            if init.get("name") == "kmeans" and "patches_from" not in init:
                # Coates & Ng 2011 learn the centroids from the training images themselves.
                init["patches_from"] = read_split(examples, "train")[0][:5000]
            layer = init_first_conv(model, init, trainable=not frozen, layer_name=name)
        else:
            layer = model.get_layer(name)
        if pretrains:
            images = read_split(examples, "train")[0]
            done = pretrain.autoencoder(model, name, images, p.pretrain, p.seed)
            facts.update(pretrain_losses=done.losses, pretrain_kernel_change=done.kernel_change)
        layer.trainable = not frozen  # before compile: a frozen kernel gets no gradient
    except (ValueError, TypeError) as e:
        where = p.first_layer_init if p.first_layer == "learned" else p.first_layer
        raise ComponentError(f"train.first_layer={where}: {e}") from None
    facts["kernel_sha256"] = kernel_digest(layer)
    return facts


def kernel_digest(layer) -> str:
    """sha256 of a layer's kernel values (float32): shows whether training moved it."""
    import hashlib

    import numpy as np

    return hashlib.sha256(np.asarray(layer.kernel, dtype="float32").tobytes()).hexdigest()


def _compiled_model(p, task, input_shape, num_classes, steps, state, ckpt_dir, examples):
    """Returns (model, first-layer facts; empty when resuming or for a plain learned layer)."""
    if state is not None:
        # The checkpoint holds weights, optimizer slots, step counter and seed states (its
        # custom layers and initializers are registered by the zoo imports above).
        return keras.saving.load_model(ckpt_dir / state["file"]), {}
    model = build_network(p, input_shape, num_classes)
    facts = {}
    if p.first_layer != "learned" or p.first_layer_init is not None or p.freeze_first_layer:
        facts = _first_layer(model, p, examples)
    model.compile(
        optimizer=optim.make_optimizer(p, steps), **task.compile_args(p, examples, num_classes)
    )
    return model, facts


@dataclass
class _Plan:
    """What one training run works with, resolved from the inputs and the checkpoint."""

    params: TrainParams
    task: tasks.Task
    input_shape: tuple[int, int, int]
    num_classes: int
    count: int
    steps: int
    has_validation: bool
    ckpt_dir: Path
    state: dict | None

    @property
    def initial_epoch(self) -> int:
        return self.state["epochs_done"] if self.state else 0


def plan_run(ctx: Context) -> _Plan:
    examples = ctx.inputs["examples"]
    input_shape, num_classes = data.check_examples(examples)
    has_validation = data.split_count(examples, "validation") > 0
    p = _check_monitor(ctx.params, has_validation)
    count = data.split_count(examples, "train")
    ckpt_dir = Path(ctx.work_dir) / "ckpt"
    plan = _Plan(
        p,
        ctx.task,
        input_shape,
        num_classes,
        count,
        data.steps_per_epoch(count, p.batch_size),
        has_validation,
        ckpt_dir,
        load_state(ckpt_dir),
    )
    if plan.state:
        print(
            f"train: resuming from epoch {plan.initial_epoch}/{p.epochs} ({ckpt_dir})", flush=True
        )
    return plan


def _fit(ctx: Context, plan: _Plan, model, checkpoint) -> float:
    """Trains from the plan's initial epoch; returns the seconds ``fit`` took."""
    p, examples = plan.params, ctx.inputs["examples"]
    if plan.initial_epoch >= p.epochs or checkpoint.stopped:
        return 0.0
    validation = None
    if plan.has_validation:
        validation = data.eval_dataset(
            examples, "validation", plan.num_classes, p.batch_size, 1024, plan.task,
            p, model.outputs[0].shape,
        )  # fmt: skip
        validation = runtime.distributable(validation, p.strategy)
    train = data.train_dataset(
        examples, p, plan.num_classes, plan.initial_epoch, plan.task, model.outputs[0].shape
    )
    t0 = time.perf_counter()
    model.fit(
        runtime.distributable(train, p.strategy),
        epochs=p.epochs,
        initial_epoch=plan.initial_epoch,
        steps_per_epoch=plan.steps,
        validation_data=validation,
        callbacks=[checkpoint],
        verbose=1 if ctx.show_progress else 0,
        shuffle=False,  # the dataset is already shuffled per (seed, epoch)
    )
    return time.perf_counter() - t0


@dataclass
class Fitted:
    """What a fit leaves: the model and its checkpoint callback (history, early stopping)."""

    model: keras.Model
    checkpoint: EpochCheckpoint
    fit_seconds: float
    restored: bool
    first_layer: dict = field(default_factory=dict)


def fit_in_scope(ctx, plan: _Plan, strategy, precision: str, save_dir: Path, on_epoch) -> Fitted:
    """Builds (or resumes from ``plan.ckpt_dir``) and fits the model under ``strategy``.

    Args:
        save_dir: where this process checkpoints: ``plan.ckpt_dir``, or a non-chief worker's
            own scratch.
        on_epoch: ``on_epoch(epoch, logs)`` after each epoch's checkpoint, or None.
    """
    p = plan.params
    examples = ctx.inputs["examples"]
    with runtime.dtype_policy(precision), strategy.scope():
        model, facts = _compiled_model(
            p, plan.task, plan.input_shape, plan.num_classes, plan.steps, plan.state,
            plan.ckpt_dir, examples,
        )  # fmt: skip
        if p.strategy == MULTI_WORKER:
            runtime.multi_worker_keras(model)
        checkpoint = EpochCheckpoint(save_dir, p.early_stopping, plan.state, on_epoch)
        fit_seconds = _fit(ctx, plan, model, checkpoint)
        restored = checkpoint.restore_best()
    return Fitted(model, checkpoint, fit_seconds, restored, facts)


def _write_files(ctx: Context, model, history: dict) -> None:
    out = ctx.outputs["model"].path
    model.save(out / MODEL_FILE)
    (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    files = [
        plots.model_summary(model, out / SUMMARY_FILE),
        plots.training_curves(history, out / CURVES_FILE),
        plots.first_layer_kernels(model, out / KERNELS_FILE, _first_conv(ctx.params.model)),
    ]
    for f in files:
        if f is not None:
            ctx.tracker.log_artifact(f)


def train_split_metrics(ctx: Context, plan: _Plan, model) -> dict[str, float]:
    """The final model on the whole train split, inference mode: ``train_split_<metric>``.

    The per-epoch ``accuracy`` is a running mean over an epoch whose weights kept changing,
    measured with dropout on; capacity claims (Goodfellow et al. 2016, Table 11.1) are about
    the training error of the model itself.
    """
    p = plan.params
    ds = data.eval_dataset(
        ctx.inputs["examples"], "train", plan.num_classes, p.batch_size, 0, plan.task, p,
        model.outputs[0].shape,
    )  # fmt: skip
    got = model.evaluate(ds, verbose=0, return_dict=True)
    return {f"train_split_{k}": float(v) for k, v in got.items()}


def _pretrain_metrics(ctx: Context, facts: dict) -> dict[str, float]:
    """Logs the autoencoder's loss per epoch; returns its final figures (none without one)."""
    losses = facts.get("pretrain_losses")
    if not losses:
        return {}
    for epoch, loss in enumerate(losses, start=1):
        ctx.log_metrics({"pretrain_loss": loss}, step=epoch)
    return {
        "pretrain_reconstruction_mse": losses[-1],
        "pretrain_kernel_change": facts["pretrain_kernel_change"],
    }


def _first_conv(name: str) -> str | None:
    try:
        return zoo.get_spec(name).first_conv
    except KeyError:
        return None


def _final_metrics(history: dict, count: int) -> dict[str, float]:
    final = {k: v[-1] for k, v in history.items() if v and k != "epoch_seconds"}
    seconds = history.get("epoch_seconds", [])
    # Steady state: the first epoch also traces the graph and fills the cache.
    steady = seconds[1:] or seconds
    final["images_per_second"] = count / (sum(steady) / len(steady)) if steady else 0.0
    final["epochs_run"] = len(history.get("loss", []))
    return final


def run(ctx: Context) -> None:
    """Fits ``train.model`` on the train split, validating on the validation split.

    Raises:
        ComponentError: untransformed or empty Examples, a bad model or monitor setting.
    """
    plan = plan_run(ctx)
    p = plan.params
    precision = runtime.resolve_precision(p.precision)
    runtime.seed_everything(p.seed, p.deterministic)

    def log_epoch(epoch, logs):
        ctx.log_metrics(logs, step=epoch + 1)
        if not ctx.show_progress:  # logs and cron: one line per epoch instead of bars
            print(epoch_line(epoch + 1, p.epochs, logs), flush=True)

    if p.strategy == MULTI_WORKER:
        # Worker processes train one model; this process forwards the chief's epochs to MLflow
        # and publishes the chief's model.
        fitted = multiworker.fit_on_workers(ctx, precision, log_epoch)
    else:
        strategy = runtime.make_strategy(p.strategy)
        fitted = fit_in_scope(ctx, plan, strategy, precision, plan.ckpt_dir, log_epoch)
    model, checkpoint = fitted.model, fitted.checkpoint
    fit_seconds, restored = fitted.fit_seconds, fitted.restored

    history = checkpoint.history
    _write_files(ctx, model, history)
    final = _final_metrics(history, plan.count)
    # Trainable and frozen weights alike: what a sweep compares across layer types.
    final["parameters"] = float(model.count_params())
    final.update(_pretrain_metrics(ctx, fitted.first_layer))
    if p.measure_train_split:
        final.update(train_split_metrics(ctx, plan, model))
    ctx.log_metrics(final)
    ctx.tracker.set_tags(
        {"train.precision": precision, "train.resumed_from": str(plan.initial_epoch)}
    )
    ctx.outputs["model"].properties.update(
        {
            "file": MODEL_FILE,
            "model": p.model,
            "task": plan.task.name,
            "input_shape": list(plan.input_shape),
            "num_classes": plan.num_classes,
            "class_names": list(ctx.inputs["examples"].properties.get("class_names", [])),
            "outputs": "logits",
            "precision": precision,
            "strategy": p.strategy,
            "seed": p.seed,
            "epochs_run": final["epochs_run"],
            "resumed_from_epoch": plan.initial_epoch,
            "stopped_early": checkpoint.stopped,
            "restored_best_epoch": (checkpoint.best_epoch + 1) if restored else None,
            "fit_seconds": round(fit_seconds, 3),
            "metrics": final,
            "first_layer": fitted.first_layer,
        }
    )
