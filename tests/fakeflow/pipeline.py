"""The fake pipeline: produce -> double -> consume."""

from convflow.pipelines.config import apply_overrides, read_yaml, resolve
from convflow.pipelines.dag import Pipeline

from fakeflow.doubling import double
from fakeflow.steps import Params, consume, produce

COMPONENTS = {"produce": produce, "double": double, "consume": consume}


def build(root: str, log: str, hang_marker: str = "", **sections):
    data = {"pipeline": {"name": "fake", "artifact_root": root}}
    for name in COMPONENTS:
        data[name] = {"log": log, **sections.get(name, {})}
    data["double"].setdefault("hang_marker", hang_marker)
    cfg = resolve(data, {n: Params for n in COMPONENTS})
    p = Pipeline("fake")
    a = p.add(produce, cfg["produce"])
    b = p.add(double, cfg["double"], examples=a["examples"])
    p.add(consume, cfg["consume"], examples=b["examples"])
    return p, cfg


def build_point(base: str, root: str, log: str, overrides: list[str]):
    """A sweep point: the sections of the YAML file ``base`` with ``overrides`` (``--set``).

    Module-level, so that ``functools.partial(build_point, ...)`` reaches a parallel sweep's
    point processes.
    """
    return build(root, log, **apply_overrides(read_yaml(base), overrides))
