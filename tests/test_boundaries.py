"""No legal value is a crash: every param of every component at each declared boundary.

`convflow validate` runs the config checks and each step's own checks (``spec.check``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing

import pytest
from convflow.pipelines import definitions
from convflow.pipelines.cli import main

CONFIG = "configs/fashion_mnist_lenet.yaml"


def _is_list(tp) -> bool:
    return typing.get_origin(tp) in (list, tuple) or any(
        typing.get_origin(a) in (list, tuple) for a in typing.get_args(tp)
    )


def boundaries(cls, prefix: str):
    """(key, value) for each declared min, max and choice of ``cls`` and nested params."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}.{f.name}", hints[f.name]
        nested = [a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)]
        if nested:
            yield from boundaries(nested[0], key)
            continue
        meta = f.metadata
        wrap = (lambda v: [v]) if _is_list(tp) else (lambda v: v)
        for choice in meta.get("choices", ()):
            yield key, wrap(choice)
        for limit in ("min", "max"):
            if limit in meta:
                yield key, wrap(meta[limit])


def all_boundaries():
    out = []
    for template in definitions.TEMPLATES:
        definition = definitions.get(template)
        for name, comp in definition.COMPONENTS.items():
            out += [(template, k, v) for k, v in boundaries(comp.params_cls, name)]
    return out


BOUNDARIES = all_boundaries()


def test_the_walk_covers_every_component():
    sections = {key.split(".")[0] for _, key, _ in BOUNDARIES}
    for template in definitions.TEMPLATES:
        assert set(definitions.get(template).COMPONENTS) <= sections | {"register"}
    assert len(BOUNDARIES) > 50


@pytest.mark.parametrize(("template", "key", "value"), BOUNDARIES, ids=lambda x: str(x))
def test_each_boundary_validates(template, key, value, capsys, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    override = f"{key}={json.dumps(value)}"
    code = main(["validate", CONFIG, "--set", override])  # a crash raises here
    err = capsys.readouterr().err.strip()
    if code == 2:  # a rule across keys (source 'folder' needs ingest.folder): one line
        assert err.startswith(f"error: {key.split('.')[0]}") and "\n" not in err
        return
    assert code == 0, err


@pytest.mark.slow
def test_a_tiny_real_run_at_the_boundaries(small_idx, tmp_path, capsys, monkeypatch, request):
    """seed 0 (it crashed every time), batch size 1, one epoch, no validation split."""
    monkeypatch.chdir(request.config.rootpath)
    sets = [f"ingest.idx.{k}={v}" for k, v in small_idx.items()]
    sets += [
        "ingest.validation_fraction=0",
        "train.seed=0",
        "train.batch_size=1",
        "train.epochs=1",
        "evaluate.min_accuracy=0",
        f"pipeline.artifact_root={tmp_path / 'store'}",
    ]
    args = ["run", CONFIG, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--quiet"]
    for s in sets:
        args += ["--set", s]
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    for step in ("ingest", "preprocess", "train", "evaluate", "register"):
        assert re.search(rf"\| {step} +\| ran +\|", out.out)
