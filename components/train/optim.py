"""Optimizer and learning-rate schedule (with warm-up) from :class:`TrainParams`; the loss and
metrics are the task's."""

from __future__ import annotations

import math

import keras
from convflow.components import tasks
from convflow.components.train.spec import TrainParams
from keras import ops


@keras.saving.register_keras_serializable(package="convflow")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` (Goyal et al. 2017), then constant, step or cosine decay.

    Cosine follows Loshchilov & Hutter 2017 (SGDR) without restarts and ends at
    ``peak * min_ratio``; step multiplies by ``factor`` every ``step_every`` steps. Registered
    so epoch checkpoints (which carry the optimizer) load back for resume.
    """

    def __init__(
        self,
        kind: str,
        peak: float,
        total_steps: int,
        warmup_steps: int = 0,
        step_every: int = 1,
        factor: float = 0.1,
        min_ratio: float = 0.0,
    ):
        self.kind = kind
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.step_every = int(step_every)
        self.factor = float(factor)
        self.min_ratio = float(min_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        after = ops.maximum(step - self.warmup_steps, 0.0)
        if self.kind == "cosine":
            span = float(max(self.total_steps - self.warmup_steps, 1))
            progress = ops.minimum(after / span, 1.0)
            cos = 0.5 * (1.0 + ops.cos(math.pi * progress))
            lr = self.peak * (self.min_ratio + (1.0 - self.min_ratio) * cos)
        elif self.kind == "step":
            lr = self.peak * ops.power(self.factor, ops.floor(after / float(self.step_every)))
        else:
            lr = ops.full_like(step, self.peak)
        if self.warmup_steps:
            lr = ops.where(step < self.warmup_steps, self.peak * (step + 1.0) / warm, lr)
        return lr

    def get_config(self):
        return {
            "kind": self.kind,
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "step_every": self.step_every,
            "factor": self.factor,
            "min_ratio": self.min_ratio,
        }


def make_schedule(p: TrainParams, steps_per_epoch: int) -> WarmupSchedule:
    return WarmupSchedule(
        p.schedule,
        p.learning_rate,
        total_steps=p.epochs * steps_per_epoch,
        warmup_steps=round(p.warmup_epochs * steps_per_epoch),
        step_every=p.step_every_epochs * steps_per_epoch,
        factor=p.step_factor,
        min_ratio=p.min_learning_rate_ratio,
    )


def make_optimizer(p: TrainParams, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD with Nesterov momentum, Adam or AdamW (Loshchilov & Hutter 2019).

    Keras 3 applies ``weight_decay`` decoupled for every optimizer, to all weights: an
    exclusion list would not survive the checkpoint round trip, and resume must be exact.
    """
    lr = make_schedule(p, steps_per_epoch)
    wd = p.weight_decay or None
    if p.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=p.momentum, nesterov=True, weight_decay=wd)
    elif p.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=p.weight_decay)
    else:
        opt = keras.optimizers.Adam(lr, weight_decay=wd)
    return opt


def make_loss(p: TrainParams, task=None) -> keras.losses.Loss:
    """The task's loss on logits (default task: classification's cross-entropy)."""
    return (task or tasks.get(tasks.DEFAULT)).loss(p)


def make_metrics(task=None) -> list:
    """The task's per-epoch metrics (default task: classification's accuracy and top-3)."""
    return (task or tasks.get(tasks.DEFAULT)).metrics()
