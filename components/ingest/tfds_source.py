"""TFDS datasets by name: downloaded when online, or read from a prepared ``data_dir``."""

from __future__ import annotations

import numpy as np
from convflow.components.base import ComponentError


def read(name: str, data_dir: str | None, download: bool, progress):
    """Returns (class names, {split: (images list, labels)}) from a TFDS builder."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:
        raise ComponentError(
            f"TFDS dataset {name!r} is not available ({str(e).splitlines()[0]})"
        ) from None
    if download:
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise ComponentError(
                f"TFDS could not download/prepare {name!r} ({str(e).splitlines()[0][:200]}); "
                "offline, point ingest.tfds_data_dir at a prepared copy or use source: idx"
            ) from None
    elif not builder.is_prepared():
        raise ComponentError(
            f"TFDS dataset {name!r} is not prepared in data_dir {builder.data_dir!r}; set "
            "ingest.tfds_download: true (needs internet) or ingest.tfds_data_dir to a prepared copy"
        )
    label_feature = builder.info.features[builder.info.supervised_keys[1]]
    class_names = list(label_feature.names)
    splits = {}
    for split, info in builder.info.splits.items():
        ds = builder.as_dataset(split=split, as_supervised=True)
        images, labels = [], []
        for image, label in progress(
            tfds.as_numpy(ds), total=info.num_examples, desc=f"read {split}"
        ):
            images.append(image if image.ndim == 3 else image[..., None])
            labels.append(int(label))
        splits[split] = (images, np.asarray(labels, np.int64))
    return class_names, splits
