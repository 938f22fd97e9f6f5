"""The training input: tf.data from the preprocessed TFRecords, plus augmentation.

The order of every epoch depends only on (seed, epoch): each epoch is its own seeded shuffle
of the cached split, chained with ``flat_map``. A run resumed at epoch k therefore sees
exactly the batches an uninterrupted run would have seen from epoch k on.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from convflow.components import tasks
from convflow.components.base import TRANSFORMED_EXAMPLES, Artifact, ComponentError
from convflow.components.examples import ExamplesInfo, dataset
from convflow.components.train.spec import AugmentParams, TrainParams

AUTOTUNE = tf.data.AUTOTUNE


def split_count(artifact: Artifact, split: str) -> int:
    return int(artifact.properties.get("splits", {}).get(split, {}).get("count", 0))


def split_bytes(artifact: Artifact, split: str) -> int:
    shape = artifact.properties.get("image_shape") or [0]
    itemsize = np.dtype(artifact.properties["dtype"]).itemsize
    return split_count(artifact, split) * int(np.prod(shape)) * itemsize


def check_examples(artifact: Artifact) -> tuple[tuple[int, int, int], int]:
    """(image shape, number of classes); a clear error for inputs training cannot use.

    Raises:
        ComponentError: raw (not transformed) Examples, or an empty train split.
    """
    ExamplesInfo.of(artifact, expect=TRANSFORMED_EXAMPLES)
    props = artifact.properties
    if props.get("dtype") != "float32" or not props.get("image_shape"):
        raise ComponentError(
            f"train needs preprocessed Examples (float32, one image_shape); {artifact.uri} has "
            f"dtype={props.get('dtype')!r}, image_shape={props.get('image_shape')!r}: "
            "wire train to the preprocess step"
        )
    if split_count(artifact, "train") == 0:
        raise ComponentError(f"{artifact.uri} has an empty 'train' split; nothing to train on")
    return tuple(props["image_shape"]), int(props["num_classes"])


def labelled(
    artifact: Artifact, split: str, num_classes: int, cache_limit_mb: int, task=None, weigh=None
):
    """(image, training target) pairs, cached in memory when the split fits the limit.

    The task encodes the targets (classification: one-hot labels, so label smoothing, MixUp
    and CutMix all see the same format). ``weigh`` (:meth:`Task.pixel_weights`) adds a third
    element, the record's loss weights, computed once per record before the cache.
    """
    task = task or tasks.get(tasks.DEFAULT)

    def encode(x, y):
        target = task.training_target(y, num_classes)
        return (x, target) if weigh is None else (x, target, weigh(y))

    ds = dataset(artifact, split, task=task).map(encode, num_parallel_calls=AUTOTUNE)
    if split_bytes(artifact, split) <= cache_limit_mb * 2**20:
        ds = ds.cache()
    return ds


def steps_per_epoch(count: int, batch_size: int) -> int:
    return max(1, math.ceil(count / batch_size))


def train_dataset(
    artifact: Artifact,
    params: TrainParams,
    num_classes: int,
    initial_epoch: int,
    task=None,
    output_shape=None,
):
    """Batches for epochs ``initial_epoch .. params.epochs-1``, shuffled per (seed, epoch).

    A task with batch targets (:meth:`Task.batch_targets`, detection) augments and encodes
    each batch itself; ``output_shape`` is the network's.
    """
    weigh = task.pixel_weights(params) if task else None
    base = labelled(artifact, "train", num_classes, params.cache_limit_mb, task, weigh)
    buffer = min(params.shuffle_buffer, split_count(artifact, "train"))

    def epoch(e):
        seed = tf.cast(params.seed, tf.int64) * 100_003 + e
        return base.shuffle(buffer, seed=seed, reshuffle_each_iteration=False).batch(
            params.batch_size
        )

    ds = tf.data.Dataset.range(initial_epoch, params.epochs).flat_map(epoch)
    # TFRecord files have unknown length; stating it lets Keras keep one iterator across
    # epochs (so epoch k really gets shuffle k) and size its progress bar.
    steps = steps_per_epoch(split_count(artifact, "train"), params.batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality((params.epochs - initial_epoch) * steps))
    hook = task.batch_targets(params, output_shape, num_classes, True) if task else None
    augment = hook or build_augmentation(params.augment, params.seed, artifact)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def eval_dataset(
    artifact: Artifact,
    split: str,
    num_classes: int,
    batch_size: int,
    cache_mb=0,
    task=None,
    params: TrainParams | None = None,
    output_shape=None,
):
    """Batches of (image, training target) of one split, in record order."""
    steps = steps_per_epoch(split_count(artifact, split), batch_size)
    ds = labelled(artifact, split, num_classes, cache_mb, task).batch(batch_size)
    hook = task.batch_targets(params, output_shape, num_classes, False) if task else None
    if hook is not None:
        ds = ds.map(hook, num_parallel_calls=AUTOTUNE)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(AUTOTUNE)


def _value_range(artifact: Artifact) -> tuple[float, float]:
    # RandAugment and RandomErasing assume a pixel range; preprocessed images are contrast-
    # normalized floats. The preprocess step measured it on the train split; Examples made
    # elsewhere are read instead (first 1024 training images).
    transform = ExamplesInfo.from_properties(artifact.properties).transform
    if transform is not None and transform.value_range is not None:
        return transform.value_range
    images = next(iter(dataset(artifact, "train").batch(1024)))[0].numpy()
    return float(images.min()), float(images.max())


# Augmentation layers are float32 whatever the global dtype policy: augmentation is input
# work, and half-precision images would only lose pixel detail before the model casts them.
_FLOAT32 = {"dtype": "float32"}


def _image_layers(cfg: AugmentParams, seed: int, artifact: Artifact) -> list:
    """The per-image augmentation layers, in order (flip, crop, shift, zoom, contrast,
    RandAugment, erasing)."""
    height, width, _ = artifact.properties["image_shape"]
    kw = _FLOAT32
    image_layers = []
    if cfg.flip != "none":
        image_layers.append(keras.layers.RandomFlip(cfg.flip, seed=seed, **kw))
    if cfg.crop_padding:
        image_layers.append(keras.layers.ZeroPadding2D(cfg.crop_padding, **kw))
        image_layers.append(keras.layers.RandomCrop(height, width, seed=seed + 1, **kw))
    if cfg.translation:
        image_layers.append(
            keras.layers.RandomTranslation(
                cfg.translation, cfg.translation, fill_mode="constant", seed=seed + 2, **kw
            )
        )
    if cfg.zoom:
        image_layers.append(
            keras.layers.RandomZoom(cfg.zoom, cfg.zoom, fill_mode="constant", seed=seed + 8, **kw)
        )
    ranged = cfg.rand_augment or cfg.erasing_probability or cfg.contrast
    value_range = _value_range(artifact) if ranged else None
    if cfg.contrast:
        image_layers.append(
            keras.layers.RandomContrast(cfg.contrast, value_range=value_range, seed=seed + 9, **kw)
        )
    if cfg.rand_augment:
        image_layers.append(
            keras.layers.RandAugment(
                value_range=value_range,
                num_ops=cfg.rand_augment_ops,
                factor=cfg.rand_augment_magnitude,
                seed=seed + 3,
                **kw,
            )
        )
    if cfg.erasing_probability:
        p = cfg.erasing_probability
        image_layers.append(
            keras.layers.RandomErasing(
                factor=(p, p), fill_value=0.0, value_range=value_range, seed=seed + 4, **kw
            )
        )
    return image_layers


def build_augmentation(cfg: AugmentParams, seed: int, artifact: Artifact):
    """A batch-level ``(images, labels) -> (images, labels)`` function, or None when off.

    Images (batch, H, W, C) float32 keep their shape; MixUp and CutMix also mix the one-hot
    labels (batch, classes).
    """
    if not cfg.enabled:
        return None
    height, width, _ = artifact.properties["image_shape"]
    image_layers = _image_layers(cfg, seed, artifact)
    mixers = []
    if cfg.mixup_alpha:
        mixers.append(keras.layers.MixUp(alpha=cfg.mixup_alpha, seed=seed + 5, **_FLOAT32))
    if cfg.cutmix_alpha:
        mixers.append(keras.layers.CutMix(factor=cfg.cutmix_alpha, seed=seed + 6, **_FLOAT32))

    def mix(images, labels):
        # With both enabled each batch gets one of them (as in timm), picked by a coin flip.
        outs = [m({"images": images, "labels": labels}, training=True) for m in mixers]
        if len(outs) == 1:
            return outs[0]["images"], outs[0]["labels"]
        coin = tf.random.uniform([], seed=seed + 7) < 0.5
        return (
            tf.where(coin, outs[0]["images"], outs[1]["images"]),
            tf.where(coin, outs[0]["labels"], outs[1]["labels"]),
        )

    def augment(images, labels, *weights):
        # weights: per-pixel loss weights (Task.pixel_weights); only tasks whose
        # train_problem refuses pixel-moving options have them, so they stay as they are.
        for layer in image_layers:
            images = layer(images, training=True)
        images = tf.ensure_shape(images, [None, height, width, None])
        if mixers:
            images, labels = mix(images, labels)
        return (images, labels, *weights)

    return augment
