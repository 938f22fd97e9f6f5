"""Semantic segmentation: ingest -> preprocess -> validate_data -> train -> evaluate -> register.

The steps are the same for every task; this definition picks the ``segmentation`` task
(components/tasks/segmentation.py), which the runner hands to each step.
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

TASK = "segmentation"
COMPONENTS = {c.name: c for c in (ingest, preprocess, validate_data, train, evaluate, register)}


def create_pipeline(cfg: Config) -> Pipeline:
    p = Pipeline(cfg.pipeline.name, task=TASK)
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
