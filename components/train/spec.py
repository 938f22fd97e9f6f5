"""The train step's declaration: the ``train:`` section (model, optimizer, schedule,
regularization, augmentation, runtime) and its contract; the work is in executor.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convflow.components.base import MODEL, TRANSFORMED_EXAMPLES, declare, param
from convflow.models import catalog

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
MULTI_WORKER = "multi_worker_mirrored"
STRATEGIES = ("default", "mirrored", MULTI_WORKER)
# models/initializers.py's names (that module imports keras; validate must not). A test
# checks that the two lists agree.
FIRST_LAYER_INITS = ("bilinear", "conv_identity", "edge", "gabor", "kmeans", "sobel")
FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
# ``train.first_layer``: where the first convolution's kernels come from, and whether they
# train (lecture: "Obtaining kernels without supervised training"; Goodfellow et al. 2016,
# §9.9). Mode -> (initializer spec or None, frozen, autoencoder pretraining).
FIRST_LAYERS: dict[str, tuple[dict[str, Any] | None, bool, bool]] = {
    "learned": (None, False, False),  # purely supervised, the modern default
    "random_frozen": (None, True, False),  # Jarrett et al. 2009
    "edge_frozen": ({"name": "edge", "orientation": "both"}, True, False),  # Fig. 9.6
    "sobel_frozen": ({"name": "sobel"}, True, False),
    "gabor_frozen": ({"name": "gabor"}, True, False),  # V1 simple cells
    # Coates & Ng 2011; ε_norm for contrast-normalized (GCN/LCN) pixels, not 0-255.
    "kmeans_frozen": ({"name": "kmeans", "norm_epsilon": 0.01}, True, False),
    # Greedy layer-wise pretraining (Lee et al. 2009): an autoencoder trains the layer alone.
    "autoencoder_frozen": (None, True, True),
    "autoencoder_fine_tuned": (None, False, True),
}


@dataclass(frozen=True)
class AugmentParams:
    """Training-split augmentation, built from Keras core preprocessing layers.

    Every transform is off at its default, so the default pipeline trains on the data as-is.
    """

    flip: str = param("none", help="random flip direction", choices=FLIPS)
    translation: float = param(
        0.0, help="max random shift as a fraction of height/width", min=0.0, max=0.5
    )
    zoom: float = param(
        0.0, help="max random zoom in or out as a fraction (detection: boxes move)", min=0.0,
        max=0.5,
    )  # fmt: skip
    crop_padding: int = param(
        0,
        help="zero-pad by this many pixels, then random-crop back (Krizhevsky 2012)",
        min=0,
        max=64,
    )
    rand_augment: bool = param(False, help="RandAugment (Cubuk et al. 2020)")
    rand_augment_ops: int = param(2, help="RandAugment ops per image", min=1, max=10)
    rand_augment_magnitude: float = param(
        0.5, help="RandAugment magnitude in [0, 1]", min=0.0, max=1.0
    )
    mixup_alpha: float = param(0.0, help="MixUp Beta(α, α); 0 = off (Zhang et al. 2018)", min=0.0)
    cutmix_alpha: float = param(0.0, help="CutMix Beta(α, α); 0 = off (Yun et al. 2019)", min=0.0)
    erasing_probability: float = param(
        0.0, help="RandomErasing probability; 0 = off (Zhong et al. 2020)", min=0.0, max=1.0
    )
    contrast: float = param(
        0.0,
        help="max random contrast change as a fraction (photometric: no pixel moves)",
        min=0.0,
        max=1.0,
    )

    @property
    def enabled(self) -> bool:
        return any(
            (
                self.flip != "none",
                self.translation > 0,
                self.zoom > 0,
                self.crop_padding > 0,
                self.rand_augment,
                self.mixup_alpha > 0,
                self.cutmix_alpha > 0,
                self.erasing_probability > 0,
                self.contrast > 0,
            )
        )


@dataclass(frozen=True)
class EarlyStoppingParams:
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    patience: int = param(0, help="epochs without improvement; 0 = off", min=0)
    monitor: str = param("val_loss", help="metric to watch, e.g. val_loss or val_accuracy")
    min_delta: float = param(0.0, help="smallest change that counts as improvement", min=0.0)
    restore_best: bool = param(True, help="end with the weights of the best epoch")


@dataclass(frozen=True)
class PretrainParams:
    """The unsupervised stage of ``first_layer: autoencoder_*`` (components/train/pretrain.py).

    The first convolution and a transposed-convolution decoder learn to reconstruct the
    layer's input from the training images alone, no labels (a convolutional autoencoder,
    Masci et al. 2011, as the greedy layer-wise stage of Lee et al. 2009).
    """

    epochs: int = param(2, help="autoencoder epochs on the training images", min=1, max=1000)
    learning_rate: float = param(
        2e-3, help="Adam learning rate of the autoencoder", min_exclusive=0.0, max=10.0
    )
    max_images: int = param(
        60_000, help="pretrain on at most this many training images (the first ones)", min=1
    )


@dataclass(frozen=True)
class TrainParams:
    """Resolved ``train:`` section. Defaults train LeNet-5 on Fashion-MNIST to ≥ 0.90 fast."""

    model: str = param("lenet5", help="model zoo name (see `convflow models`)")
    model_kwargs: dict[str, Any] = param(
        help="builder kwargs: {model name: {arg: value}} (only the chosen model's apply) "
        "or {arg: value}",
        default_factory=dict,
    )
    epochs: int = param(10, help="training epochs", min=1, max=10_000)
    batch_size: int = param(128, help="global batch size", min=1, max=65_536)
    optimizer: str = param("adam", help="optimizer", choices=OPTIMIZERS)
    learning_rate: float = param(2e-3, help="peak learning rate", min_exclusive=0.0, max=10.0)
    momentum: float = param(0.9, help="SGD momentum (Nesterov)", min=0.0, max=0.999)
    weight_decay: float = param(
        0.0,
        help="decoupled weight decay: w -= lr·wd·w each step; with SGD momentum m, a paper's "
        "L2 coefficient λ corresponds to wd = λ / (1 − m)",
        min=0.0,
        max=1.0,
    )
    schedule: str = param("cosine", help="learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: float = param(0.0, help="linear warm-up length in epochs", min=0.0)
    step_every_epochs: int = param(10, help="step schedule: epochs between decays", min=1)
    step_factor: float = param(0.1, help="step schedule: multiply by this", min=0.0, max=1.0)
    min_learning_rate_ratio: float = param(
        0.0, help="cosine floor as a fraction of the peak", min=0.0, max=1.0
    )
    label_smoothing: float = param(0.0, help="label smoothing (Szegedy 2016)", min=0.0, max=0.5)
    class_loss: str = param(
        "sse",
        help="detection: YOLO v1's class term, 'sse' (the paper) or 'crossentropy'",
        choices=("sse", "crossentropy"),
    )
    class_weighting: str = param(
        "none",
        help="segmentation: 'median_frequency' weighs each class by median freq / its freq "
        "(Eigen & Fergus 2015, SegNet)",
        choices=("none", "median_frequency"),
    )
    pixel_weighting: str = param(
        "none",
        help="segmentation: 'unet_border' weighs background pixels between objects by "
        "1 + w0 exp(-(d1+d2)^2 / 2 sigma^2) (Ronneberger et al. 2015, eq. 2)",
        choices=("none", "unet_border"),
    )
    border_w0: float = param(10.0, help="unet_border: the border weight w0", min=0.0)
    border_sigma: float = param(
        5.0, help="unet_border: the border width sigma in pixels", min_exclusive=0.0
    )
    augment: AugmentParams = field(default_factory=AugmentParams)
    early_stopping: EarlyStoppingParams = field(default_factory=EarlyStoppingParams)
    precision: str = param("auto", help="dtype policy; auto picks per device", choices=PRECISIONS)
    strategy: str = param("default", help="tf.distribute strategy", choices=STRATEGIES)
    workers: int = param(
        2, help="multi_worker_mirrored: worker processes launched on loopback", min=1, max=64
    )
    seed: int = param(42, help="seed for weights, shuffling and augmentation", min=0)
    deterministic: bool = param(False, help="turn on TF op determinism (slower)")
    shuffle_buffer: int = param(
        60_000, help="shuffle buffer; ≥ split size is a full shuffle", min=1
    )
    cache_limit_mb: int = param(
        2048, help="cache the decoded split in memory when it is at most this large", min=0
    )
    # Kernels obtained without supervised training (lecture: "Obtaining kernels without
    # supervised training"): e.g. {name: gabor}, {name: sobel}, {name: kmeans}.
    first_layer_init: dict[str, Any] | None = param(
        None, help="initializer spec for the first convolution (models.initializers.get)"
    )
    freeze_first_layer: bool = param(False, help="keep the first convolution's kernel fixed")
    first_layer: str = param(
        "learned",
        help="first convolution: learned, random/hand-designed/k-means kernels kept frozen, or "
        "pretrained by an autoencoder (greedy layer-wise) then frozen or fine-tuned",
        choices=tuple(FIRST_LAYERS),
    )
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    measure_train_split: bool = param(
        False,
        help="after fitting, evaluate the whole train split in inference mode (no dropout or "
        "augmentation) as train_split_* metrics: the training error of Table 11.1",
    )

    def __post_init__(self):
        if self.first_layer != "learned" and (
            self.first_layer_init is not None or self.freeze_first_layer
        ):
            raise ValueError(
                f"first_layer={self.first_layer!r} sets the first convolution itself; drop "
                "first_layer_init/freeze_first_layer, or keep first_layer: learned"
            )
        spec = self.first_layer_init
        if spec is not None and spec.get("name") not in FIRST_LAYER_INITS:
            raise ValueError(
                f"first_layer_init.name={spec.get('name')!r} is unknown; expected one of "
                f"{', '.join(FIRST_LAYER_INITS)}"
            )


def first_layer_plan(p: TrainParams) -> tuple[dict[str, Any] | None, bool, bool]:
    """(initializer spec or None, frozen, autoencoder pretraining) of the first convolution,
    from ``first_layer`` or, when that is "learned", ``first_layer_init``/``freeze_first_layer``.
    """
    if p.first_layer != "learned":
        init, frozen, pretrain = FIRST_LAYERS[p.first_layer]
        return (dict(init) if init else None), frozen, pretrain
    return p.first_layer_init, p.freeze_first_layer, False


def model_kwargs_for(model: str, model_kwargs: dict, names) -> dict:
    """The builder kwargs of ``model``.

    ``model_kwargs`` is either keyed by zoo name, ``{lenet5: {filters: [16, 32]},
    resnet20: {shortcut: B}}`` (only the chosen model's entry applies, so switching
    ``train.model`` never hands one model another's arguments), or the arguments themselves.
    """
    if model_kwargs and set(model_kwargs) <= set(names):
        return dict(model_kwargs.get(model) or {})
    return dict(model_kwargs)


def check(params: TrainParams, task) -> None:
    """``train.model`` against the zoo's metadata: the name exists, its kind fits the task,
    and ``train.model_kwargs`` are arguments its builder accepts; ``train.augment`` and the
    loss options against the task (:meth:`Task.train_problem`). Needs no Keras.

    Raises:
        ValueError: one line naming the key, the value and what is allowed.
    """
    try:
        kwargs = model_kwargs_for(params.model, params.model_kwargs, catalog.names())
        catalog.check(params.model, kwargs, task.model_kinds if task else None)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"train.model={params.model!r}: {e.args[0]}") from None
    problem = task.train_problem(params) if task else None
    if problem:
        raise ValueError(problem)


train = declare(
    name="train",
    executor="convflow.components.train.executor",
    inputs={"examples": TRANSFORMED_EXAMPLES},
    outputs={"model": MODEL},
    params=TrainParams,
    check=check,
)
