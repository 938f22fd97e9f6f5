"""Image classification: ingest -> preprocess -> train -> evaluate -> register."""

from __future__ import annotations

from components.ingest import ingest
from pipelines.config import Config
from pipelines.dag import Pipeline

COMPONENTS = {"ingest": ingest}


def create_pipeline(cfg: Config) -> Pipeline:
    p = Pipeline(cfg.pipeline.name)
    p.add(ingest, cfg["ingest"])
    return p
