"""TFDS segmentation datasets read from a prepared ``data_dir`` (or downloaded when online).

A TFDS segmentation dataset has an image feature and a mask feature (an ``Image`` of one
channel, e.g. ``oxford_iiit_pet``'s ``segmentation_mask``). The mask key is given, or found
as the one image feature whose name holds "mask" or "segmentation". Pairs are checked like
file pairs (size, values below the class count or 255) and rejected with the reason.
"""

from __future__ import annotations

import numpy as np
from convflow.components.base import ComponentError
from convflow.components.ingest.masks import SPLIT_ALIASES, MaskRecord, check_pair, rejection


def _builder(name: str, data_dir: str | None, download: bool):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # TFDS raises many kinds for an unknown or broken dataset
        raise ComponentError(
            f"TFDS dataset {name!r} is not available ({str(e).splitlines()[0]})"
        ) from None
    if download:
        try:
            builder.download_and_prepare()
        except Exception as e:  # network, checksum or preparation errors alike
            raise ComponentError(
                f"TFDS could not download/prepare {name!r} ({str(e).splitlines()[0][:200]}); "
                "offline, point ingest.tfds_data_dir at a prepared copy"
            ) from None
    elif not builder.is_prepared():
        raise ComponentError(
            f"TFDS dataset {name!r} is not prepared in data_dir {builder.data_dir!r}; set "
            "ingest.tfds_download: true (needs internet) or ingest.tfds_data_dir to a prepared copy"
        )
    return builder


def _mask_key(features, name: str, mask_key: str | None) -> str:
    keys = list(features.keys())
    if mask_key:
        if mask_key not in keys:
            raise ComponentError(
                f"TFDS dataset {name!r} has no feature {mask_key!r}; it has {keys} "
                "(set ingest.tfds_mask_key)"
            )
        return mask_key
    found = [k for k in keys if ("mask" in k or "segmentation" in k) and k != "image"]
    if len(found) != 1:
        raise ComponentError(
            f"cannot tell the mask feature of TFDS dataset {name!r} among {keys}; "
            "set ingest.tfds_mask_key"
        )
    return found[0]


def read(
    name: str,
    data_dir: str | None,
    download: bool,
    class_names: list[str] | None,
    progress,
    *,
    image_key: str = "image",
    mask_key: str | None = None,
):
    """A TFDS segmentation dataset as mask records.

    Args:
        name: TFDS builder name (``"oxford_iiit_pet"``, or a custom builder's name).
        data_dir: TFDS data_dir holding the prepared data (None: TFDS's default).
        download: download and prepare when missing (needs internet).
        class_names: the mask's class names, index = value (required: TFDS does not say).
        progress: a tqdm-like wrapper.
        image_key: the image feature.
        mask_key: the mask feature (None: the one whose name holds "mask"/"segmentation").

    Returns:
        ``(class names, {split: [MaskRecord]}, rejected)``.

    Raises:
        ComponentError: dataset missing or unprepared offline, keys not found, no class names.
    """
    import tensorflow_datasets as tfds

    if not class_names:
        raise ComponentError(
            f"TFDS dataset {name!r}: set ingest.class_names (one name per mask value)"
        )
    builder = _builder(name, data_dir, download)
    key = _mask_key(builder.info.features, name, mask_key)
    if image_key not in builder.info.features:
        raise ComponentError(f"TFDS dataset {name!r} has no image feature {image_key!r}")
    splits, rejected = {}, []
    for split, info in builder.info.splits.items():
        records = []
        ds = builder.as_dataset(split=split)
        for i, ex in enumerate(progress(tfds.as_numpy(ds), total=info.num_examples, desc=split)):
            image = ex[image_key] if ex[image_key].ndim == 3 else ex[image_key][..., None]
            mask = np.asarray(ex[key])
            mask = mask[..., 0] if mask.ndim == 3 else mask
            source = f"tfds:{name}/{split}[{i}]"
            reason = check_pair(image, mask, len(class_names))
            if reason:
                rejected.append(rejection(source, reason))
            else:
                records.append(MaskRecord(image.astype(np.uint8), mask.astype(np.uint8), source))
        splits[SPLIT_ALIASES.get(split, split)] = records
    return list(class_names), splits, rejected
