"""Params of the ingest component (config section ``ingest``)."""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import param

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
SOURCES = ("idx", "tfds", "folder")


@dataclass(frozen=True)
class IdxFiles:
    """Four IDX files (MNIST format, gzipped or plain); defaults: Debian's Fashion-MNIST."""

    train_images: str = param(f"{DEBIAN_FASHION_MNIST}/train-images-idx3-ubyte.gz")
    train_labels: str = param(f"{DEBIAN_FASHION_MNIST}/train-labels-idx1-ubyte.gz")
    test_images: str = param(f"{DEBIAN_FASHION_MNIST}/t10k-images-idx3-ubyte.gz")
    test_labels: str = param(f"{DEBIAN_FASHION_MNIST}/t10k-labels-idx1-ubyte.gz")
    class_names: list[str] = param(default_factory=lambda: list(FASHION_MNIST_CLASSES))


@dataclass(frozen=True)
class Params:
    """How to ingest.

    Attributes:
        source: "idx" (IDX files), "tfds" (a TFDS builder) or "folder" (one subfolder per
            class; optional train/ and test/ levels above them).
        idx: the IDX files, for source "idx".
        tfds_name: TFDS dataset name, for source "tfds".
        tfds_data_dir: TFDS data_dir holding prepared data (None: TFDS's default).
        tfds_download: download and prepare when the data is not there (needs internet).
        folder: the image folder, for source "folder".
        channels: "auto" (RGB if any image is colour, else grayscale), "grayscale", "rgb".
        test_fraction: share carved out as test split when a folder has no test/ level.
        validation_fraction: share of train carved out (stratified, seeded) as validation.
        seed: seed of the splits and of max_examples sampling.
        max_examples: keep at most this many examples per split (a stratified sample), for
            quick runs; None keeps all.
        max_rejected_fraction: fail when more than this share of records is rejected.
        shard_size: records per TFRecord shard.
    """

    source: str = param("idx", choices=SOURCES)
    idx: IdxFiles = param(default_factory=IdxFiles)
    tfds_name: str = param("fashion_mnist")
    tfds_data_dir: str | None = param(None)
    tfds_download: bool = param(False)
    folder: str | None = param(None)
    channels: str = param("auto", choices=("auto", "grayscale", "rgb"))
    test_fraction: float = param(0.2, min=0.0, max=0.9)
    validation_fraction: float = param(0.1, min=0.0, max=0.9)
    seed: int = param(0, min=0)
    max_examples: int | None = param(None, min=1)
    max_rejected_fraction: float = param(0.01, min=0.0, max=1.0)
    shard_size: int = param(10_000, min=1)

    def __post_init__(self):
        if self.source == "folder" and not self.folder:
            raise ValueError("source 'folder' needs ingest.folder: the image directory")
