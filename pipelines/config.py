"""YAML configs -> frozen dataclasses, validated once at the edge.

A config file has a ``pipeline:`` section (:class:`PipelineSettings`) and one section per
component of the pipeline it names, typed by that component's params dataclass. Every
mistake (unknown key, wrong type, value out of range, missing file) raises
:class:`ConfigError` whose message is one line naming the key, the bad value and what is
allowed; the CLI prints it and exits with code 2. The per-type checks live in
:mod:`convflow.pipelines.coercion`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from convflow.components.base import param
from convflow.pipelines.coercion import ConfigError, build_dataclass


@dataclass(frozen=True)
class PipelineSettings:
    """The ``pipeline:`` section.

    Attributes:
        name: pipeline name; also the MLflow experiment name.
        template: which pipeline definition builds the DAG (see pipelines/definitions).
        model_name: registered model name in the MLflow model registry.
        artifact_root: where artifacts are published (a local directory).
        tracking_uri: MLflow tracking URI; None means the embedded sqlite store.
    """

    name: str = param(help="pipeline name, also the MLflow experiment")
    template: str = param("image_classification", help="pipeline definition")
    model_name: str | None = param(None, help="registered model name (default: name)")
    artifact_root: str = param("convflow_runs/artifacts", help="artifact store directory")
    tracking_uri: str | None = param(None, help="MLflow tracking URI (default: sqlite)")


@dataclass(frozen=True)
class ScheduleSettings:
    """The optional ``schedule:`` section: when the pipeline runs unattended.

    ``convflow schedule`` takes its defaults from here and ``convflow export airflow``
    writes them into the DAG. It never joins a cache key: when a run happens does not
    change what it computes.

    Attributes:
        cron: a cron expression, e.g. "0 2 * * *" (a 6th field is seconds).
        timezone: IANA zone the cron fields are read in, e.g. "Europe/Berlin".
        catchup: "latest" runs once at start-up when ticks were missed; "none" does not.
        retries: Airflow: retries of a failed step.
        retry_delay_s: Airflow: first retry delay; it doubles on each retry.
        max_retry_delay_s: Airflow: the longest retry delay.
    """

    cron: str | None = param(None, help='a cron expression, e.g. "0 2 * * *"')
    timezone: str = param("UTC", help='IANA time zone, e.g. "Europe/Berlin"')
    catchup: str = param("none", choices=("none", "latest"))
    retries: int = param(2, min=0)
    retry_delay_s: int = param(300, min=1)
    max_retry_delay_s: int = param(3600, min=1)

    def __post_init__(self):
        # croniter and zoneinfo: light, and a bad expression must fail at load, not at 2 am.
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from croniter import croniter

        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"cron: {self.cron!r} is not a cron expression, e.g. '0 2 * * *'")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not an IANA time zone, e.g. 'Europe/Berlin'"
            ) from None


@dataclass(frozen=True)
class Config:
    """A resolved, validated pipeline config."""

    pipeline: PipelineSettings
    sections: Mapping[str, Any]  # component name -> its params dataclass
    source: str = ""
    schedule: ScheduleSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"pipeline": dataclasses.asdict(self.pipeline)}
        out.update({k: dataclasses.asdict(v) for k, v in self.sections.items()})
        return out

    def to_yaml(self) -> str:
        out = self.to_dict()
        if self.schedule is not None:  # shown and logged, but no part of the hash
            out["schedule"] = dataclasses.asdict(self.schedule)
        return yaml.safe_dump(out, sort_keys=False)

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def __getitem__(self, section: str) -> Any:
        return self.sections[section]


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``section.key=value`` overrides (values parsed as YAML, so typed)."""
    for text in overrides:
        path, value = _parse_override(text)
        node = data
        for part in path[:-1]:
            if node.get(part) is None:  # an empty section (`train:`) is an empty mapping
                node[part] = {}
            child = node[part]
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return data


MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: configs are hand-written; anything bigger is a mistake
MAX_CONFIG_NODES = 100_000  # values after aliases expand; a "billion laughs" file stops here


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in one mapping (YAML says they are an error)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise ConfigError(
                    f"line {line}: duplicate key {key!r} (first on line {seen[key]}); "
                    "keep one of them"
                )
            if isinstance(key, typing.Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document has once every alias is expanded (shared nodes counted per use)."""
    memo: dict[int, int] = {}
    order, stack = [], [root]
    while stack:  # iterative post-order: deep nesting must not hit the recursion limit
        node = stack.pop()
        if id(node) in memo:
            continue
        memo[id(node)] = 0
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        memo[id(node)] = min(1 + sum(memo[id(c)] for c in _children(node)), 1 << 62)
    return memo[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _config_text(p: Path, path: str | Path) -> str:
    if p.is_dir():
        raise ConfigError(f"{path} is a directory; give a YAML file such as configs/<name>.yaml")
    if not p.is_file():
        raise ConfigError(f"config file not found: {str(path)!r}; configs live in configs/")
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path} is {size:,} bytes, above the {MAX_CONFIG_BYTES:,}-byte limit for a config; "
            "is it the right file?"
        )
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a config file: UTF-8, at most MAX_CONFIG_BYTES, no duplicate keys, and no
    aliases that expand beyond MAX_CONFIG_NODES values.

    Raises:
        ConfigError: one line naming the file, the line where known, and what to do.
    """
    p = Path(path)
    text = _config_text(p, path)
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{path}: its anchors and aliases expand to more than {MAX_CONFIG_NODES:,} "
                "values; write the values out instead of nesting aliases"
            )
        data = (loader.construct_document(node) if node is not None else None) or {}
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def resolve(data: Mapping[str, Any], components: Mapping[str, type], source: str = "") -> Config:
    """Validates raw config data against the pipeline settings and component params."""
    data = dict(data)
    pipeline = build_dataclass(PipelineSettings, data.pop("pipeline", None) or {}, "pipeline")
    schedule = data.pop("schedule", None)
    if schedule is not None:
        schedule = build_dataclass(ScheduleSettings, schedule or {}, "schedule")
    unknown = sorted(set(data) - set(components))
    if unknown:
        allowed = ", ".join(["pipeline", *components, "schedule"])
        raise ConfigError(f"{unknown[0]}: unknown section; allowed sections: {allowed}")
    sections = {}
    for name, params_cls in components.items():
        section = data.get(name) or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{name}: expected a mapping, got {section!r}")
        sections[name] = build_dataclass(params_cls, section, name)
    for key in ("name", "model_name"):
        if getattr(pipeline, key) is not None and not getattr(pipeline, key).strip():
            raise ConfigError(f"pipeline.{key}: {getattr(pipeline, key)!r} is empty; give a name")
    if pipeline.model_name is None:
        pipeline = dataclasses.replace(pipeline, model_name=pipeline.name)
    return Config(pipeline=pipeline, sections=sections, source=source, schedule=schedule)
