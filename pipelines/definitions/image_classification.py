"""Image classification: ingest -> preprocess -> train -> evaluate -> register."""

from __future__ import annotations

from convflow.components.evaluate import evaluate
from convflow.components.ingest import ingest
from convflow.components.preprocess import preprocess
from convflow.components.register import register
from convflow.components.train import train
from convflow.pipelines.config import Config
from convflow.pipelines.dag import Pipeline

COMPONENTS = {c.name: c for c in (ingest, preprocess, train, evaluate, register)}


def create_pipeline(cfg: Config) -> Pipeline:
    p = Pipeline(cfg.pipeline.name)
    raw = p.add(ingest, cfg["ingest"])
    pre = p.add(preprocess, cfg["preprocess"], examples=raw["examples"])
    fit = p.add(train, cfg["train"], examples=pre["examples"])
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
