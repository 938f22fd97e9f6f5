"""The six steps every pipeline wires the same way; a definition only picks its task.

ingest -> preprocess -> validate_data -> train -> evaluate -> register (DESIGN.md, "Tasks").
"""

from __future__ import annotations

from convflow.components.evaluate import evaluate
from convflow.components.ingest import ingest
from convflow.components.preprocess import preprocess
from convflow.components.register import register
from convflow.components.train import train
from convflow.components.validate_data import validate_data
from convflow.pipelines.config import Config
from convflow.pipelines.dag import Pipeline

COMPONENTS = {c.name: c for c in (ingest, preprocess, validate_data, train, evaluate, register)}


def wire(cfg: Config, task: str) -> Pipeline:
    """The DAG of ``cfg`` for ``task`` (a components/tasks name); the same for every task."""
    p = Pipeline(cfg.pipeline.name, task=task)
    raw = p.add(ingest, cfg["ingest"])
    pre = p.add(preprocess, cfg["preprocess"], examples=raw["examples"])
    p.add(
        validate_data,
        cfg["validate_data"],
        raw_examples=raw["examples"],
        examples=pre["examples"],
        statistics=pre["statistics"],
    )
    fit = p.add(train, cfg["train"], after=("validate_data",), examples=pre["examples"])
    judged = p.add(
        evaluate,
        cfg["evaluate"],
        model=fit["model"],
        examples=pre["examples"],
        raw_examples=raw["examples"],
    )
    p.add(
        register,
        cfg["register"],
        model=fit["model"],
        examples=pre["examples"],
        blessing=judged["blessing"],
    )
    return p
