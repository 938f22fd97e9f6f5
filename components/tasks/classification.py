"""Image classification: one class per image (LeCun et al. 1998; the lecture's first task).

Records carry ``label`` (int64 class id); crop and resize leave it as it is. The network ends
in logits; training uses one-hot targets (so label smoothing, MixUp and CutMix see one format)
and categorical cross-entropy; the served model adds a softmax and returns class
probabilities. Blessing metric: accuracy of the served model on raw test images.

Keras and TensorFlow load inside the methods that run in executors: ``convflow validate``
imports this module to check the model kind and must stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from convflow.components import plotting
from convflow.components.base import ComponentError
from convflow.components.examples import LABEL, LABEL_FEATURES, dataset
from convflow.components.examples.codec import label_reason
from convflow.components.tasks import classification_metrics as M
from convflow.components.tasks import classification_plots as plots
from convflow.components.tasks.base import EvalInputs, Evaluation, Task, Window

CONFUSION_FILE, MISCLASSIFIED_FILE = "confusion_matrix.png", "misclassified.png"


class Classification(Task):
    """Class probabilities for the whole image; see the module docstring."""

    name = "classification"
    model_kinds = ("classification",)
    blessing_metric = "accuracy"
    head_activation = "softmax"
    target_features = LABEL_FEATURES

    def check_target(self, target, image_shape, num_classes):
        return label_reason(int(target[LABEL]), num_classes)

    def class_histogram(self, targets, num_classes):
        labels = np.asarray(targets[LABEL], np.int64)
        return np.bincount(labels, minlength=num_classes).astype(np.int64)

    def move_targets(self, targets: Mapping[str, np.ndarray], window: Window):
        return dict(targets)  # a class label does not move with the pixels

    def training_target(self, target, num_classes: int):
        import tensorflow as tf  # runs inside tf.data's map, in the train executor

        return tf.one_hot(target, num_classes, dtype=tf.float32)

    def loss(self, params, examples=None):
        import keras

        if getattr(params, "class_weighting", "none") != "none":
            raise ComponentError(
                f"train.class_weighting={params.class_weighting!r} weighs pixels of a "
                "segmentation task; for classification leave it 'none'"
            )

        # The networks end in logits (classifier_activation=None); softmax is added for serving.
        return keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=params.label_smoothing
        )

    def metrics(self, num_classes: int | None = None, top_k: int = 3) -> list:
        import keras

        return [
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=top_k, name=f"top{top_k}_accuracy"),
        ]

    def evaluate(self, inputs: EvalInputs) -> Evaluation:
        """Two views of the test images.

        - the trained network on the transformed split: loss, accuracy, top-k, per-class
          precision/recall/F1, macro averages, the confusion matrix;
        - the served model (preprocessing + network + softmax) on the raw split:
          ``serving_accuracy`` and the most confident mistakes. ``serving_accuracy`` ≈
          ``accuracy`` also checks that the served preprocessing matches the Beam job.

        Raises:
            ComponentError: the split is empty.
        """
        probs, labels = network_probs(
            inputs.network, inputs.examples, inputs.split, inputs.batch_size
        )
        if not len(labels):
            raise ComponentError(
                f"{inputs.examples.uri}: split {inputs.split!r} is empty; nothing to evaluate"
            )
        names = inputs.class_names
        cm = M.confusion_matrix(labels, probs.argmax(axis=1), len(names))
        per_class = M.per_class(cm, names)
        metrics = {**M.summary(probs, labels, inputs.settings.top_k), **M.macro(per_class)}
        raw_images, raw_labels = inputs.raw_images, np.asarray(inputs.raw_targets, np.int64)
        raw_probs = served_probs(
            lambda x: inputs.serving.predict(x, verbose=0), raw_images, inputs.batch_size
        )
        metrics["serving_accuracy"] = float((raw_probs.argmax(axis=1) == raw_labels).mean())
        out = inputs.out_dir
        files = [
            plotting.confusion_matrix(cm, names, out / CONFUSION_FILE),
            plots.misclassified(
                raw_images,
                raw_labels,
                raw_probs,
                names,
                out / MISCLASSIFIED_FILE,
                inputs.settings.num_misclassified,
            ),
        ]
        return Evaluation(metrics, per_class, files, count=len(labels))

    def served_score(self, predict: Callable, images, targets, batch_size: int) -> float:
        probs = served_probs(predict, images, batch_size)
        return float((probs.argmax(axis=1) == np.asarray(targets)).mean())

    def serving_outputs(self, images, logits, transform):
        import keras

        return keras.layers.Softmax(dtype="float32", name="probabilities")(logits)

    def output_specs(self, model) -> list[tuple[str, tuple[int, ...]]]:
        return [("float32", (-1, int(model.outputs[0].shape[-1])))]

    def describe_prediction(self, outputs, class_names: Sequence[str]) -> str:
        probs = np.asarray(outputs).reshape(-1)
        index = int(np.argmax(probs))
        return f"{class_names[index]}\t{probs[index]:.4f}"


def network_probs(network, examples, split: str, batch_size: int):
    """(probs (N, classes), labels (N,)) of the trained network on a transformed split."""
    import keras
    import tensorflow as tf

    ds = dataset(examples, split)
    labels = np.concatenate([y for _, y in ds.batch(4096).as_numpy_iterator()] or [[]])
    steps = -(-len(labels) // batch_size)
    images = ds.map(lambda x, y: x).batch(batch_size)
    images = images.apply(tf.data.experimental.assert_cardinality(steps))
    logits = network.predict(images, verbose=0)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(np.asarray(logits, np.float32)))
    return probs, labels.astype(np.int64)


def served_probs(predict: Callable, images, batch_size: int) -> np.ndarray:
    """Probabilities of a served model's ``predict`` over same-size batches or single images."""
    if isinstance(images, np.ndarray):
        chunks = [predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    else:
        chunks = [predict(image[None]) for image in images]
    return np.concatenate([np.asarray(c, np.float32) for c in chunks])
