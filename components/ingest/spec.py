"""The ingest step's declaration: params (config section ``ingest``) and contract.

Ingest reads IDX files, a TFDS dataset or an image folder and writes raw Examples (uint8
images of any size, the task's targets); the work is in executor.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from convflow.components.base import RAW_EXAMPLES, declare, param
from convflow.components.images import parse_colour
from convflow.components.ingest import sources
from convflow.components.ingest.scenes import SceneParams

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
# Sources of records with boxes (detection), see components/ingest/box_ingest.py.
BOX_SOURCES = ("scenes", "coco", "voc_detection", "yolo_txt")
# Sources of records with a mask (segmentation), see components/ingest/mask_ingest.py.
MASK_SOURCES = ("scenes", "mask_folder", "voc_segmentation", "tfds_segmentation")
SOURCES = ("idx", "tfds", "folder", *BOX_SOURCES, *MASK_SOURCES[1:])
# Sources whose files are under ingest.folder.
_FOLDER_SOURCES = ("folder", "coco", "voc_detection", "yolo_txt", "mask_folder", "voc_segmentation")
SPLIT_NAMES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
}
REJECTED_FILE = "rejected.jsonl"


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
        folder: the image folder, for source "folder"; the COCO, Pascal VOC or YOLO-txt
            root for "coco", "voc_detection", "yolo_txt" (components/ingest/box_ingest.py);
            the image/mask folder for "mask_folder"; the Pascal VOC root for
            "voc_segmentation" (components/ingest/mask_ingest.py).
        class_names: class names (index = class id, for masks the mask value) for the box
            and mask sources; None takes the source's own (COCO categories, classes.txt;
            VOC: its 20 detection / 21 segmentation classes).
        scenes: the Fashion-MNIST scenes, for source "scenes" (the default data of
            detection and segmentation).
        tfds_mask_key: the mask feature of a "tfds_segmentation" dataset (None: the one
            whose name holds "mask" or "segmentation").
        channels: one channel count for every image of a folder dataset: "majority" (the
            count most files decode to, ties to RGB), "grayscale" or "rgb".
        background: colour that transparent pixels are composited over (a Pillow colour
            name or "#rrggbb"); serving uses the same default, white.
        max_image_pixels: an image with more pixels is a rejected record (None: Pillow's
            MAX_IMAGE_PIXELS, 89,478,485).
        split_names: top-level folder name (case-insensitive) -> split it holds.
        on_duplicates: the same file content in two splits: "warn" (count + warning),
            "drop" (remove the later split's copy) or "fail".
        fingerprint: how the source data enters the cache key: "stat" (sorted listing with
            size and mtime of every file) or "content" (sha256 of every file).
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
    class_names: list[str] | None = param(None)
    scenes: SceneParams = param(default_factory=SceneParams)
    tfds_mask_key: str | None = param(None)
    channels: str = param("majority", choices=("majority", "grayscale", "rgb"))
    background: str = param("white")
    max_image_pixels: int | None = param(None, min=1)
    split_names: dict[str, str] = param(default_factory=lambda: dict(SPLIT_NAMES))
    on_duplicates: str = param("warn", choices=("warn", "drop", "fail"))
    fingerprint: str = param("stat", choices=("stat", "content"))
    test_fraction: float = param(0.2, min=0.0, max=0.9)
    validation_fraction: float = param(0.1, min=0.0, max=0.9)
    seed: int = param(0, min=0)
    max_examples: int | None = param(None, min=1)
    max_rejected_fraction: float = param(0.01, min=0.0, max=1.0)
    shard_size: int = param(10_000, min=1)

    def __post_init__(self):
        if self.source in _FOLDER_SOURCES and not self.folder:
            raise ValueError(f"source {self.source!r} needs ingest.folder: the data directory")
        parse_colour(self.background)  # raises ValueError naming the value
        bad = sorted(
            v for v in self.split_names.values() if v not in ("train", "validation", "test")
        )
        if bad:
            raise ValueError(
                f"split_names: {bad[0]!r} is not a split; expected train, validation or test"
            )


ingest = declare(
    name="ingest",
    executor="convflow.components.ingest.executor",
    inputs={},
    outputs={"examples": RAW_EXAMPLES},
    params=Params,
    source=sources.fingerprint,
)
