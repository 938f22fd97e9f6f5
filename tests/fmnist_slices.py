"""Small Examples artifacts cut from the real Fashion-MNIST IDX files, for fast tests."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
from convflow.components.base import (
    ARTIFACT_FILE,
    EXAMPLES,
    Artifact,
    publish_by_hand,
    run_by_hand,
)
from convflow.components.examples import write_split

IDX_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def load_idx(kind: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28, 1) uint8 and labels for records [start, stop) of ``train``/``t10k``."""
    with gzip.open(IDX_DIR / f"{kind}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(IDX_DIR / f"{kind}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return images[start:stop].copy(), labels[start:stop].copy()


def write_examples(
    out: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], dtype: str, **properties
) -> Artifact:
    """Writes an Examples artifact (shards + artifact.json) and loads it back."""
    out.mkdir(parents=True, exist_ok=True)
    entries, digest = {}, hashlib.sha256()
    for split, (images, labels) in splits.items():
        images = np.asarray(images, dtype=dtype)
        entries[split] = write_split(out, split, images, labels)
        digest.update(images.tobytes())
        digest.update(labels.tobytes())
    first = next(iter(splits.values()))[0]
    props = {
        "splits": entries,
        "dtype": dtype,
        "image_shape": list(first.shape[1:]),
        "class_names": CLASS_NAMES,
        "num_classes": len(CLASS_NAMES),
        "label_histogram": {
            s: np.bincount(lab, minlength=10).tolist() for s, (_, lab) in splits.items()
        },
        **properties,
    }
    meta = {
        "type": EXAMPLES,
        "fingerprint": digest.hexdigest(),
        "producer": "tests",
        "properties": props,
    }
    (out / ARTIFACT_FILE).write_text(json.dumps(meta))
    return Artifact.load(out)


def raw_splits(n_train: int, n_val: int, n_test: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    train = load_idx("train", 0, n_train + n_val)
    test = load_idx("t10k", 0, n_test)
    return {
        "train": (train[0][:n_train], train[1][:n_train]),
        "validation": (train[0][n_train:], train[1][n_train:]),
        "test": test,
    }


# Publishing and running a component by hand are the library's (components/base.py).
publish = publish_by_hand
run_component = run_by_hand


def preprocessed(raw: Artifact, root: Path) -> Artifact:
    """The real preprocess component (Beam, in-memory DirectRunner) on a small raw artifact."""
    from convflow.components.preprocess import Params, preprocess

    params = Params(direct_num_workers=1, direct_running_mode="in_memory")
    return run_component(preprocess, root, {"examples": raw}, params)["examples"]


def small_pipeline_data(root: Path, n_train: int, n_val: int, n_test: int):
    """(raw, preprocessed) Examples from the first images of the real Fashion-MNIST."""
    raw = write_examples(root / "raw", raw_splits(n_train, n_val, n_test), "uint8")
    return raw, preprocessed(raw, root / "preprocess")
