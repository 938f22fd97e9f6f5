"""Typed properties of Examples artifacts, written and read in this one place.

``ExamplesInfo`` is what ingest writes and every later step reads (splits, pixel dtype, image
shape, channels, classes, task); transformed Examples add a :class:`TransformInfo`, which
is also everything the served model needs to rebuild the preprocessing (transforms.py).
Raw and transformed Examples are different artifact types (``RawExamples``,
``TransformedExamples``), so a train step wired to ingest fails in the DAG's type check, and
:meth:`ExamplesInfo.of` refuses the wrong kind at load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from convflow.components.base import (
    EXAMPLES,
    RAW_EXAMPLES,
    TRANSFORMED_EXAMPLES,
    Artifact,
    ComponentError,
    OutputArtifact,
)


@dataclass(frozen=True)
class TransformInfo:
    """How transformed Examples were made from raw ones (the transform table's settings).

    Attributes:
        steps: transform names after scaling to [0, 1], in order (transforms.TRANSFORMS).
        input_dtype: the raw pixels' dtype, ``uint8``.
        channels: channels of every image.
        settings: transform name -> its configured settings (transforms.settings_of).
        rejected: records the transform job dead-lettered.
        value_range: (min, max) pixel value of the transformed train split (augmentations
            such as RandAugment need it), None when unknown.
        channel_mean, channel_std: per-channel statistics of the train split that the
            ``standardize`` step used (None without it).
    """

    steps: tuple[str, ...]
    input_dtype: str
    channels: int
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rejected: int = 0
    value_range: tuple[float, float] | None = None
    channel_mean: tuple[float, ...] | None = None
    channel_std: tuple[float, ...] | None = None

    def settings_for(self, name: str) -> dict[str, Any]:
        """The keyword settings of one step, fitted statistics included (for the table)."""
        if name == "standardize":
            return {"mean": list(self.channel_mean or ()), "std": list(self.channel_std or ())}
        return dict(self.settings.get(name, {}))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("steps", "value_range", "channel_mean", "channel_std"):
            out[key] = list(out[key]) if out[key] is not None else None
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TransformInfo:
        return cls(
            steps=tuple(data["steps"]),
            input_dtype=data["input_dtype"],
            channels=int(data["channels"]),
            settings={k: dict(v) for k, v in (data.get("settings") or {}).items()},
            rejected=int(data.get("rejected", 0)),
            value_range=_tuple(data.get("value_range")),
            channel_mean=_tuple(data.get("channel_mean")),
            channel_std=_tuple(data.get("channel_std")),
        )


_KNOWN = {
    "splits", "dtype", "image_shape", "channels", "class_names", "num_classes", "task",
    "label_histogram", "rejected", "source", "preprocess",
}  # fmt: skip


def _tuple(value) -> tuple | None:
    return tuple(value) if value is not None else None


@dataclass(frozen=True)
class ExamplesInfo:
    """The properties of an Examples artifact (artifact.json ``properties``; the transform
    info is stored under ``preprocess``).

    Attributes:
        splits: split -> ``{"count": N, "files": [shard names]}``.
        dtype: pixel dtype, ``uint8`` (raw) or ``float32`` (transformed).
        image_shape: [H, W, C] when every image has it, else None (raw images of any size).
        channels: channels of every image.
        class_names: class names, index = class id.
        task: the task whose targets the records carry (tasks.TASKS).
        class_histogram: split -> per-class counts of the targets.
        rejected: records dropped by the producing step.
        source: where the raw data came from (ingest.source).
        transform: how the images were transformed; None for raw Examples.
        notes: what the source reported besides (skipped files, duplicates across splits,
            warnings, ...); stored as further top-level properties.
    """

    splits: Mapping[str, Mapping[str, Any]]
    dtype: str
    image_shape: tuple[int, int, int] | None
    channels: int
    class_names: tuple[str, ...]
    task: str = "classification"
    class_histogram: Mapping[str, list[int]] = field(default_factory=dict)
    rejected: int = 0
    source: str = ""
    transform: TransformInfo | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def artifact_type(self) -> str:
        return TRANSFORMED_EXAMPLES if self.transform is not None else RAW_EXAMPLES

    def count(self, split: str) -> int:
        return int(self.splits.get(split, {}).get("count", 0))

    def to_properties(self) -> dict[str, Any]:
        """The artifact.json properties (``num_classes`` and ``label_histogram`` kept for
        readers of earlier artifacts)."""
        props = {
            **self.notes,
            "splits": {k: dict(v) for k, v in self.splits.items()},
            "dtype": self.dtype,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "channels": self.channels,
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "task": self.task,
            "label_histogram": {k: list(v) for k, v in self.class_histogram.items()},
            "rejected": self.rejected,
            "source": self.source,
        }
        if self.transform is not None:
            props["preprocess"] = self.transform.to_json()
        return props

    def write(self, out: OutputArtifact) -> None:
        """Stores this info as ``out``'s properties; ``out`` must be of the matching type."""
        if out.type not in (self.artifact_type, EXAMPLES):
            raise TypeError(f"{out.uri}: {self.artifact_type} info on a {out.type} artifact")
        out.properties.update(self.to_properties())

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> ExamplesInfo:
        shape = props.get("image_shape")
        names = props.get("class_names") or [str(i) for i in range(props.get("num_classes", 0))]
        transform = props.get("preprocess")
        channels = props.get("channels") or (shape[-1] if shape else None)
        if channels is None and transform:
            channels = transform["channels"]
        return cls(
            splits=props.get("splits", {}),
            dtype=props["dtype"],
            image_shape=tuple(shape) if shape else None,
            channels=int(channels or 0),
            class_names=tuple(names),
            task=props.get("task", "classification"),
            class_histogram=props.get("label_histogram") or {},
            rejected=int(props.get("rejected") or 0),
            source=props.get("source", ""),
            transform=TransformInfo.from_json(transform) if transform else None,
            notes={k: v for k, v in props.items() if k not in _KNOWN},
        )

    @classmethod
    def of(cls, artifact: Artifact, expect: str | None = None) -> ExamplesInfo:
        """The info of a published Examples artifact.

        Args:
            expect: RAW_EXAMPLES or TRANSFORMED_EXAMPLES to refuse the other kind.

        Raises:
            ComponentError: the artifact is the wrong kind (names both and what to wire).
        """
        info = cls.from_properties(artifact.properties)
        typed = artifact.type in (RAW_EXAMPLES, TRANSFORMED_EXAMPLES)
        if expect is not None and typed and artifact.type != expect:
            raise ComponentError(
                f"{artifact.uri} is {artifact.type}, this step needs {expect}: wire it to "
                f"the {'preprocess' if expect == TRANSFORMED_EXAMPLES else 'ingest'} step"
            )
        return info
