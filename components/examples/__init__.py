"""Examples artifacts: the record codec, shards and splits on disk, and their typed info.

``codec`` turns images and targets into tf.train.Example records and back; ``io`` writes and
reads TFRecord shards per split (numpy or tf.data); ``info`` holds :class:`ExamplesInfo`,
the typed artifact.json properties.
"""

from convflow.components.examples.codec import (
    DTYPES,
    IMAGE,
    LABEL,
    LABEL_FEATURES,
    SHAPE,
    RejectedRecord,
    decode,
    encode,
    encode_batch,
    parse_record,
)
from convflow.components.examples.info import ExamplesInfo, TransformInfo
from convflow.components.examples.io import (
    SPLITS,
    dataset,
    iter_records,
    read_shard,
    read_split,
    shard_name,
    split_files,
    write_shard,
    write_split,
)

__all__ = [
    "DTYPES",
    "IMAGE",
    "LABEL",
    "LABEL_FEATURES",
    "SHAPE",
    "SPLITS",
    "ExamplesInfo",
    "RejectedRecord",
    "TransformInfo",
    "dataset",
    "decode",
    "encode",
    "encode_batch",
    "iter_records",
    "parse_record",
    "read_shard",
    "read_split",
    "shard_name",
    "split_files",
    "write_shard",
    "write_split",
]
