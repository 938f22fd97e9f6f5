"""The train component: a zoo model fitted on preprocessed Examples, resumable per epoch."""

from __future__ import annotations

import json
import time
from pathlib import Path

from convflow.components.base import EXAMPLES, MODEL, ComponentError, Context, component
from convflow.components.train import data, plots, runtime
from convflow.components.train.params import TrainParams

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
SUMMARY_FILE = "model_summary.txt"
CURVES_FILE = "training_curves.png"
KERNELS_FILE = "first_layer_kernels.png"


def build_network(p: TrainParams, input_shape, num_classes: int):
    """The zoo model, ending in float32 logits (softmax is added for serving)."""
    from convflow import models

    kwargs = model_kwargs_for(p.model, p.model_kwargs, models.list_models())
    try:
        return models.build(
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


def model_kwargs_for(model: str, model_kwargs: dict, names) -> dict:
    """The builder kwargs of ``model``.

    ``model_kwargs`` is either keyed by zoo name, ``{lenet5: {filters: [16, 32]},
    resnet20: {shortcut: B}}`` (only the chosen model's entry applies, so switching
    ``train.model`` never hands one model another's arguments), or the arguments themselves.
    """
    if model_kwargs and set(model_kwargs) <= set(names):
        return dict(model_kwargs.get(model) or {})
    return dict(model_kwargs)


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
        from dataclasses import replace

        return replace(p, early_stopping=replace(p.early_stopping, monitor="loss"))
    return p


def _init_first_layer(model, p: TrainParams, examples) -> None:
    from convflow.components.examples import read_split
    from convflow.models.initializers import init_first_conv

    spec = dict(p.first_layer_init)
    if spec.get("name") == "kmeans" and "patches_from" not in spec:
        # Coates & Ng 2011 learn the centroids from the training images themselves.
        spec["patches_from"] = read_split(examples, "train")[0][:5000]
    try:
        init_first_conv(model, spec, trainable=not p.freeze_first_layer)
    except (ValueError, TypeError) as e:
        raise ComponentError(f"train.first_layer_init={p.first_layer_init}: {e}") from None


def _compiled_model(p, input_shape, num_classes, steps, state, ckpt_dir, examples):
    import keras
    from convflow.components.train import optim

    if state is not None:
        # The checkpoint holds weights, optimizer slots, step counter and seed states. Its
        # custom layers and initializers must be registered before it is deserialized.
        import convflow.models.initializers
        import convflow.models.zoo  # noqa: F401

        return keras.saving.load_model(ckpt_dir / state["file"])
    model = build_network(p, input_shape, num_classes)
    if p.first_layer_init is not None:
        _init_first_layer(model, p, examples)
    model.compile(
        optimizer=optim.make_optimizer(p, steps),
        loss=optim.make_loss(p),
        metrics=optim.make_metrics(),
    )
    return model


@component(
    name="train", inputs={"examples": EXAMPLES}, outputs={"model": MODEL}, params=TrainParams
)
def train(ctx: Context) -> None:
    """Fits ``train.model`` on the train split, validating on the validation split."""
    # Keras/TF load here, not at import: the CLI imports components to validate configs.
    from convflow.components.train.checkpoint import EpochCheckpoint, load_state

    examples = ctx.inputs["examples"]
    input_shape, num_classes = data.check_examples(examples)
    has_validation = data.split_count(examples, "validation") > 0
    p = _check_monitor(ctx.params, has_validation)
    precision = runtime.resolve_precision(p.precision)
    runtime.seed_everything(p.seed, p.deterministic)
    strategy = runtime.make_strategy(p.strategy)
    count = data.split_count(examples, "train")
    steps = data.steps_per_epoch(count, p.batch_size)

    ckpt_dir = Path(ctx.work_dir) / "ckpt"
    state = load_state(ckpt_dir)
    initial_epoch = state["epochs_done"] if state else 0
    if state:
        print(f"train: resuming from epoch {initial_epoch}/{p.epochs} ({ckpt_dir})", flush=True)

    def log_epoch(epoch, logs):
        ctx.log_metrics(logs, step=epoch + 1)
        if not ctx.show_progress:  # logs and cron: one line per epoch instead of bars
            print(epoch_line(epoch + 1, p.epochs, logs), flush=True)

    with runtime.dtype_policy(precision), strategy.scope():
        model = _compiled_model(p, input_shape, num_classes, steps, state, ckpt_dir, examples)
        checkpoint = EpochCheckpoint(ckpt_dir, p.early_stopping, state, on_epoch=log_epoch)
        fit_seconds = 0.0
        if initial_epoch < p.epochs and not checkpoint.stopped:
            t0 = time.perf_counter()
            model.fit(
                data.train_dataset(examples, p, num_classes, initial_epoch),
                epochs=p.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                validation_data=(
                    data.eval_dataset(examples, "validation", num_classes, p.batch_size, 1024)
                    if has_validation
                    else None
                ),
                callbacks=[checkpoint],
                verbose=1 if ctx.show_progress else 0,
                shuffle=False,  # the dataset is already shuffled per (seed, epoch)
            )
            fit_seconds = time.perf_counter() - t0
        restored = checkpoint.restore_best()

    out = ctx.outputs["model"].path
    model.save(out / MODEL_FILE)
    history = checkpoint.history
    (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    files = [
        plots.model_summary(model, out / SUMMARY_FILE),
        plots.training_curves(history, out / CURVES_FILE),
        plots.first_layer_kernels(model, out / KERNELS_FILE),
    ]
    for f in files:
        if f is not None:
            ctx.tracker.log_artifact(f)

    epochs_run = len(history.get("loss", []))
    final = {k: v[-1] for k, v in history.items() if v and k != "epoch_seconds"}
    seconds = history.get("epoch_seconds", [])
    # Steady state: the first epoch also traces the graph and fills the cache.
    steady = seconds[1:] or seconds
    final["images_per_second"] = count / (sum(steady) / len(steady)) if steady else 0.0
    final["epochs_run"] = epochs_run
    ctx.log_metrics(final)
    ctx.tracker.set_tags({"train.precision": precision, "train.resumed_from": str(initial_epoch)})
    ctx.outputs["model"].properties.update(
        {
            "file": MODEL_FILE,
            "model": p.model,
            "input_shape": list(input_shape),
            "num_classes": num_classes,
            "class_names": list(examples.properties.get("class_names", [])),
            "outputs": "logits",
            "precision": precision,
            "strategy": p.strategy,
            "seed": p.seed,
            "epochs_run": epochs_run,
            "resumed_from_epoch": initial_epoch,
            "stopped_early": checkpoint.stopped,
            "restored_best_epoch": (checkpoint.best_epoch + 1) if restored else None,
            "fit_seconds": round(fit_seconds, 3),
            "metrics": final,
        }
    )
