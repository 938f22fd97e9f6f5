"""Every change that changes a result is noticed, and every miss says why (pipelines/why.py)."""

from __future__ import annotations

import io
import os
import re
import time

import pytest
from conftest import fashion_mnist_slice, write_idx
from convflow.components.ingest import Params, ingest
from convflow.pipelines import runner
from convflow.pipelines.config import resolve
from convflow.pipelines.dag import Pipeline
from convflow.pipelines.explain import explain


@pytest.fixture
def fake(fakeflow, tmp_path, sqlite_uri):
    """Runs the fake pipeline (produce -> double -> consume) against a fresh sqlite store."""
    from fakeflow.pipeline import build

    log = tmp_path / "calls.log"
    root = str(tmp_path / "store")

    def run(sections=None, **opts):
        pipeline, cfg = build(root, str(log), **(sections or {}))
        options = runner.RunOptions(tracking_uri=sqlite_uri, show_progress=False, **opts)
        runner.run(pipeline, cfg, options, out=io.StringIO())

    run.root, run.sqlite_uri, run.log = root, sqlite_uri, log
    return run


def reasons(text: str) -> dict[str, str]:
    """{step: reason} from the runner's ``▶ step: running (reason)`` lines."""
    return dict(re.findall(r"▶ (\w+): running \((.*)\)$", text, flags=re.M))


def test_each_miss_says_why_and_explain_runs_nothing(fake, capsys):
    fake()
    first = reasons(capsys.readouterr().err)
    assert set(first.values()) == {"first run (no earlier result in this artifact store)"}

    fake({"double": {"value": 5}})
    why = reasons(capsys.readouterr().err)
    assert why == {
        "double": "params changed: value 1 → 5",
        "consume": "input changed: examples (from double)",
    }

    out = io.StringIO()
    from fakeflow.pipeline import build

    calls = fake.log.read_text()
    pipeline, cfg = build(fake.root, str(fake.log), double={"value": 7})
    opts = runner.RunOptions(tracking_uri=fake.sqlite_uri, show_progress=False)
    verdicts = explain(pipeline, cfg, opts, out)
    assert verdicts == {"produce": "cached", "double": "runs", "consume": "waits"}
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("produce: cached (key ")
    # params differ from what double last ran with (value 5), not from the config's default
    assert "double: runs (params changed: value 5 → 7" in lines[1]
    assert lines[2] == "consume: runs if double changes its output"
    assert fake.log.read_text() == calls  # nothing ran

    fake(force=True)
    assert set(reasons(capsys.readouterr().err).values()) == {"--force"}
    fake(from_step="consume")
    assert reasons(capsys.readouterr().err) == {"consume": "--from consume"}


def _ingest_pipeline(tmp_path, files: dict, **params):
    data = {
        "pipeline": {"name": "src", "artifact_root": str(tmp_path / "store")},
        "ingest": {"idx": {**files, "class_names": [str(i) for i in range(10)]}, **params},
    }
    cfg = resolve(data, {"ingest": Params})
    p = Pipeline("src")
    p.add(ingest, cfg["ingest"])
    return p, cfg


def _run(pipeline, cfg, uri) -> str:
    opts = runner.RunOptions(tracking_uri=uri, show_progress=False)
    results, _ = runner.run(pipeline, cfg, opts, out=io.StringIO())
    return results[0].status


def test_editing_a_source_file_in_place_reruns_ingest_with_the_reason(
    tmp_path, small_idx, sqlite_uri, capsys
):
    pipeline, cfg = _ingest_pipeline(tmp_path, small_idx, max_examples=100)
    assert _run(pipeline, cfg, sqlite_uri) == "ran"
    assert _run(pipeline, cfg, sqlite_uri) == "cached"
    capsys.readouterr()

    labels = fashion_mnist_slice("train", 600)[1]
    labels[:5] = (labels[:5] + 1) % 10  # same size, other content
    time.sleep(0.01)
    write_idx(tmp_path / "train-labels.gz", labels)
    assert _run(pipeline, cfg, sqlite_uri) == "ran"
    assert reasons(capsys.readouterr().err) == {
        "ingest": "source data changed: changed train-labels.gz"
    }

    (tmp_path / "extra.txt").write_text("not read by ingest")
    assert _run(pipeline, cfg, sqlite_uri) == "cached"  # only the files it reads count


def test_content_fingerprint_ignores_a_touch_that_stat_sees(
    tmp_path, small_idx, sqlite_uri, capsys
):
    stat_p, stat_cfg = _ingest_pipeline(tmp_path / "s", small_idx, max_examples=50)
    content_p, content_cfg = _ingest_pipeline(
        tmp_path / "c", small_idx, max_examples=50, fingerprint="content"
    )
    assert _run(stat_p, stat_cfg, sqlite_uri) == "ran"
    assert _run(content_p, content_cfg, sqlite_uri) == "ran"
    capsys.readouterr()
    later = time.time() + 5
    os.utime(small_idx["test_images"], (later, later))  # touched, not changed
    assert _run(content_p, content_cfg, sqlite_uri) == "cached"
    assert _run(stat_p, stat_cfg, sqlite_uri) == "ran"
    assert reasons(capsys.readouterr().err) == {
        "ingest": "source data changed: changed test-images.gz"
    }
