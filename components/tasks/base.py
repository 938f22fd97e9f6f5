"""The Task interface: everything that differs between classification, segmentation, detection.

A pipeline definition picks one task (``Pipeline(name, task="classification")``); the runner
hands its name to every step (``ctx.task``), and the steps ask the task instead of branching
on its name (keras-hub's Backbone/Task split: the task owns targets, loss and metrics).

What a task decides, by pipeline stage:

- **records** (ingest, the examples codec): :attr:`Task.target_features` names the target
  features a record carries next to ``image`` and ``shape`` (a label; an H×W mask; a list of
  boxes with classes and ignore flags). The codec stores, reads and batch-decodes them from
  these declarations; :meth:`Task.check_target` says why a decoded record is unusable.
- **geometry** (preprocess, Beam): each crop or resize of the transform table is described as
  a :class:`Window`; :meth:`Task.move_targets` moves a batch's targets the same way (labels
  stay, masks move by nearest neighbour, boxes are shifted, scaled, clipped and dropped when
  cropped away). The image transforms themselves stay in the one transform table.
- **training**: :meth:`Task.train_problem` (train options the task cannot honour, checked
  by ``convflow validate``), :meth:`Task.training_target` (record target -> what the loss
  wants, in tf.data), :meth:`Task.pixel_weights` (per-pixel loss weights),
  :meth:`Task.loss`, :meth:`Task.metrics` and :attr:`Task.model_kinds` (which zoo kinds fit,
  checked by ``convflow validate``; every zoo model takes the same arguments, so
  the train step builds it the same way for every task, ending in logits).
- **evaluation**: :meth:`Task.evaluate` (metrics, per-class table and plots of the trained
  network and of the served model), :meth:`Task.served_score` (the blessing metric of any
  served model, so the champion is scored the same way) and :attr:`Task.blessing_metric`.
- **serving**: :attr:`Task.head_activation`, :meth:`Task.serving_outputs` (the served graph's
  post-processing: probabilities; a class map at the input's H×W; boxes in input pixels after
  NMS), :meth:`Task.output_specs` (the MLflow signature) and :meth:`Task.describe_prediction`
  (one line per image for ``convflow predict``).

Task modules are imported by ``convflow validate`` (to check the model kind), so they keep
TensorFlow and Keras imports inside the methods that run in executors.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from convflow.components.targets import TargetFeature, Window

__all__ = ["EvalInputs", "Evaluation", "TargetFeature", "Task", "Window"]


@dataclass
class Evaluation:
    """What :meth:`Task.evaluate` returns to the evaluate step.

    Attributes:
        metrics: flat name -> value; holds :attr:`Task.blessing_metric`, ``loss`` and
            ``serving_<blessing_metric>`` (the same metric of the served model on raw images).
        per_class: class name -> {metric: value}, written as per_class.json.
        files: plots written into the evaluation directory.
        count: evaluated examples.
    """

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    count: int = 0


@dataclass(frozen=True)
class EvalInputs:
    """What the evaluate step hands :meth:`Task.evaluate`.

    Attributes:
        network: the trained Keras network (outputs before the head activation).
        serving: the served Keras model (raw uint8 images in, :meth:`serving_outputs` out).
        examples: the transformed Examples artifact (what the network trained on).
        raw_images: the raw split's images (what the served model is fed): one uint8
            (N, H, W, C) array, or a list of (H, W, C) arrays when sizes differ.
        raw_targets: their targets (examples.read_split's layout).
        split: the evaluated split.
        class_names: class names, index = class id.
        batch_size: evaluation batch size.
        out_dir: where plots go.
        settings: the evaluate step's params (task-specific knobs such as ``top_k``).
    """

    network: Any
    serving: Any
    examples: Any
    raw_images: Any
    raw_targets: Any
    split: str
    class_names: list[str]
    batch_size: int
    out_dir: Path
    settings: Any


class Task(abc.ABC):
    """What differs between tasks; one subclass per task, registered in ``tasks/__init__``."""

    #: registry name, also the ``task`` property of Examples and the served model's metadata.
    name: ClassVar[str]
    #: model-zoo kinds (``models.registry.KINDS``) whose models this task can train.
    model_kinds: ClassVar[tuple[str, ...]]
    #: the evaluation metric that decides the blessing (higher is better), e.g. ``accuracy``.
    blessing_metric: ClassVar[str]
    #: the activation the served model applies to the network's outputs (the network itself
    #: ends in logits, so losses can use ``from_logits``), e.g. ``softmax``.
    head_activation: ClassVar[str | None]
    #: the target features each record carries besides ``image`` and ``shape``.
    target_features: ClassVar[tuple[TargetFeature, ...]]
    #: the served model can add per-pixel probabilities to its answer when the serving
    #: settings hold ``{"probabilities": True}`` (``register.probabilities``).
    optional_probabilities: ClassVar[bool] = False

    # --- records ---------------------------------------------------------------------
    def check_target(
        self, target: Mapping[str, np.ndarray], image_shape: Sequence[int], num_classes: int | None
    ) -> str | None:
        """Why one decoded record's target is unusable (the dead-letter reason), or None.

        The codec has already checked each feature's dtype and shape against
        :attr:`target_features`; this checks the values (class ids in range, boxes inside
        [0, 1], ...). ``num_classes`` None skips the class range check.
        """
        return None

    def class_histogram(self, targets: Mapping[str, np.ndarray], num_classes: int) -> np.ndarray:
        """(num_classes,) int64 counts of a batch's targets, for the statistics artifact."""
        return np.zeros(num_classes, np.int64)

    # --- geometry --------------------------------------------------------------------
    @abc.abstractmethod
    def move_targets(
        self, targets: Mapping[str, np.ndarray], window: Window
    ) -> dict[str, np.ndarray]:
        """A batch's targets after its images went through ``window`` (numpy, in Beam).

        Args:
            targets: feature name -> per-record values, stacked (N, ...) for fixed shapes, a
                1-D object array of per-record arrays for variable-length features.
            window: the crop/resize every image of the batch went through.

        Returns:
            The targets in the same layout, for the output images.
        """

    # --- training --------------------------------------------------------------------
    @abc.abstractmethod
    def training_target(self, target: Mapping[str, Any], num_classes: int) -> Any:
        """One record's target (tf tensors by feature name) -> the loss's ``y_true`` (tf.data)."""

    def train_problem(self, params: Any) -> str | None:
        """Why the train step's ``params`` (TrainParams) do not fit this task, as one line
        naming the key, or None. ``convflow validate`` calls it, so it needs no Keras.

        The default refuses per-pixel loss weights, which only a dense task has.
        """
        weighting = getattr(params, "pixel_weighting", "none")
        if weighting != "none":
            return (
                f"train.pixel_weighting={weighting!r} weighs pixels of masks; the {self.name} "
                "task has none: set it to 'none'"
            )
        return None

    def pixel_weights(self, params: Any):
        """A per-record map ``target -> (H, W) float32`` loss weights (Keras ``sample_weight``),
        run once per training record in tf.data before the split is cached, or None (the
        default: no per-pixel weights)."""
        return None

    def batch_targets(self, params: Any, output_shape, num_classes: int, training: bool):
        """A map over batches ``(images, targets) -> (images, y_true)`` that replaces the
        image-only augmentation, or None (the default: targets are final per record).

        Detection uses it: flips and shifts must move the boxes, and its grid targets are
        encoded after that. ``output_shape`` is the network's output shape.
        """
        return None

    @abc.abstractmethod
    def loss(self, params: Any, examples: Any = None) -> Any:
        """The keras loss on the network's logits.

        Args:
            params: the train step's TrainParams.
            examples: the transformed Examples it trains on, for data-dependent weights
                (segmentation's median-frequency class weights); None when not needed.
        """

    def compile_args(self, params: Any, examples: Any, num_classes: int) -> dict:
        """``model.compile`` keyword arguments besides the optimizer: :meth:`loss` and
        :meth:`metrics`, unless the model brings its own (detection: keras-cv's YOLOv8)."""
        return {"loss": self.loss(params, examples), "metrics": self.metrics(num_classes)}

    @abc.abstractmethod
    def metrics(self, num_classes: int | None = None) -> list:
        """Keras metrics logged every epoch (names without ``val_``)."""

    # --- evaluation ------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, inputs: EvalInputs) -> Evaluation:
        """Metrics, per-class table and plots of the trained and the served model."""

    @abc.abstractmethod
    def served_score(
        self, predict: Callable[[np.ndarray], Any], images, targets, batch_size: int
    ) -> float:
        """:attr:`blessing_metric` of a served model's ``predict`` on raw images and targets."""

    # --- serving ---------------------------------------------------------------------
    @abc.abstractmethod
    def serving_outputs(self, images, logits, transform: Any, settings: Mapping | None = None):
        """The served graph's outputs (Keras tensors) from the raw input and the logits.

        Args:
            images: the served model's raw input, uint8 (batch, H, W, C), any H and W.
            logits: the network's output on the preprocessed images.
            transform: the Examples' TransformInfo (steps and settings), so a task can map
                its outputs back to the input's pixels (:func:`transforms.window_for`).
        """

    def serving_settings(self, params: Any) -> dict | None:
        """Settings of the served graph's post-processing from the evaluate step's params
        (detection: score and IoU thresholds), or None. The blessing artifact carries them to
        the register step, so both build the same served model."""
        return None

    def override_serving(self, model, settings: Mapping[str, float]) -> dict:
        """Changes a loaded served model's post-processing settings for this process
        (detection: its NMS thresholds), as ``convflow predict`` options; returns them.

        Raises:
            ValueError: the task has no such settings, or a value is out of range.
        """
        raise ValueError(f"{', '.join(settings)}: a {self.name} model has no settings to override")

    @abc.abstractmethod
    def output_specs(self, model) -> list[tuple[str, tuple[int, ...]]]:
        """(dtype, shape) of each served output, for the MLflow signature (-1: any size)."""

    def save_prediction(self, image, outputs, class_names: Sequence[str], files, stem: str):
        """Files ``convflow predict`` writes for one image (none by default).

        Args:
            image: the raw input, uint8 (H, W, C).
            outputs: the served outputs for it (batch axis dropped).
            class_names: class names, index = class id.
            files: ``serving.predict.OutputFiles``; ``files.path(stem, suffix)`` gives a
                path under ``--out`` that is never an input.
            stem: this input's stem.

        Returns:
            The paths written.
        """
        return []

    @abc.abstractmethod
    def describe_prediction(self, outputs, class_names: Sequence[str]) -> str:
        """One line for ``convflow predict``: the served outputs for one image, readable."""
