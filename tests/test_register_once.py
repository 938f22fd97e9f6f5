"""Registry writes exactly once, and a cache hit is taken only while its effect still exists."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from convflow.components.base import (
    BLESSING,
    MODEL,
    TRANSFORMED_EXAMPLES,
    Context,
    component,
    param,
)
from convflow.components.evaluate.executor import evaluate_champion
from convflow.components.register import RegisterParams, register
from convflow.components.registration import MODEL_FINGERPRINT_TAG, finalize_pending_models
from convflow.components.serving.mlflow_io import tracking
from convflow.pipelines import runner
from convflow.pipelines.config import resolve
from convflow.pipelines.dag import Pipeline
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from test_register import PIPELINE, aliases, blessing, run_register

NAME_OF_MODEL = PIPELINE["model_name"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small trained LeNet and its data (as test_register's fixture)."""
    from convflow.components.train import TrainParams, train
    from fmnist_slices import run_component, small_pipeline_data

    root = tmp_path_factory.mktemp("register_once")
    raw, pre = small_pipeline_data(root, 600, 100, 100)
    params = TrainParams(epochs=1, batch_size=64, seed=3)
    model = run_component(train, root / "train", {"examples": pre}, params)["model"]
    return {"raw": raw, "pre": pre, "model": model}


def versions(uri: str) -> list[str]:
    client = MlflowClient(uri, registry_uri=uri)
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{NAME_OF_MODEL}'"))


def test_same_network_registers_once_and_only_aliases_move(trained, tmp_path, sqlite_uri):
    first = run_register(trained, tmp_path / "a", sqlite_uri, True, None, variant="same")
    # evaluate does not compare a model with itself, so its blessing names no champion
    again = run_register(trained, tmp_path / "b", sqlite_uri, True, None, variant="same")
    assert first["version"] == again["version"] == "1"
    assert versions(sqlite_uri) == ["1"]
    record = json.loads((tmp_path / "b" / "run" / "registration" / "registration.json").read_text())
    assert record["reused"] is True and record["aliases"] == ["challenger", "champion"]
    assert record["reason"] == "already champion (version 1)"  # not compared with itself
    tags = (
        MlflowClient(sqlite_uri, registry_uri=sqlite_uri).get_model_version(NAME_OF_MODEL, "1").tags
    )
    assert tags[MODEL_FINGERPRINT_TAG] == record["model_fingerprint"]


def test_evaluate_does_not_compare_a_model_with_itself(trained, tmp_path, sqlite_uri, capsys):
    run_register(trained, tmp_path / "a", sqlite_uri, True, None, variant="same")
    fingerprint = f"{trained['model'].fingerprint}-same"
    with tracking(sqlite_uri):
        result = evaluate_champion(None, NAME_OF_MODEL, [], [], [], 8, fingerprint)
    assert result is None
    assert "@champion (version 1) is this model; not compared" in capsys.readouterr().out


CHILD = """
import json, os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from convflow.components.base import Artifact
from convflow.components.register import RegisterParams, register
from fmnist_slices import run_component

def die(*args, **kwargs):  # SIGKILL right after the version was created, before any alias
    os.kill(os.getpid(), signal.SIGKILL)

MlflowClient.set_registered_model_alias = die
inputs = {{k: Artifact.load(v) for k, v in json.loads(sys.argv[1]).items()}}
pipeline = json.loads(sys.argv[2])
run_component(register, Path(sys.argv[3]), inputs, RegisterParams(), pipeline)
"""


@pytest.mark.slow
def test_sigkill_right_after_the_version_is_created_leaves_one_version(
    trained, tmp_path, sqlite_uri
):
    bless = blessing(tmp_path / "blessing", True, None)
    inputs = {"model": trained["model"].uri, "examples": trained["pre"].uri, "blessing": bless.uri}
    pipeline = {**PIPELINE, "tracking_uri": sqlite_uri}
    script = CHILD.format(tests=str(Path(__file__).parent))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            json.dumps(inputs),
            json.dumps(pipeline),
            str(tmp_path / "k"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert versions(sqlite_uri) == ["1"] and aliases(sqlite_uri) == {}

    again = run_register(trained, tmp_path / "r", sqlite_uri, True, None, variant="")
    assert versions(sqlite_uri) == ["1"]  # found by its model fingerprint, not created again
    assert again["version"] == "1" and aliases(sqlite_uri) == {"challenger": "1", "champion": "1"}


# -- the runner: a cache hit whose registry effect is gone runs register again -------------


@dataclass(frozen=True)
class GivenParams:
    uri: str = param("")


def _given(kind: str, name: str):
    @component(name=name, inputs={}, outputs={"out": kind}, params=GivenParams)
    def given(ctx: Context) -> None:
        """Publishes a copy of an existing artifact (the upstream steps' outputs)."""
        src = Path(ctx.params.uri)
        out = ctx.outputs["out"]
        shutil.copytree(
            src, out.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("artifact.json")
        )
        out.properties.update(json.loads((src / "artifact.json").read_text())["properties"])

    return given


GIVE_MODEL, GIVE_EXAMPLES, GIVE_BLESSING = (
    _given(MODEL, "model"),
    _given(TRANSFORMED_EXAMPLES, "examples"),
    _given(BLESSING, "blessing"),
)


def _pipeline(tmp_path, trained, bless):
    data = {
        "pipeline": {
            "name": "once",
            "artifact_root": str(tmp_path / "store"),
            "model_name": NAME_OF_MODEL,
        },
        "model": {"uri": trained["model"].uri},
        "examples": {"uri": trained["pre"].uri},
        "blessing": {"uri": bless.uri},
    }
    components = {
        "model": GivenParams,
        "examples": GivenParams,
        "blessing": GivenParams,
        "register": RegisterParams,
    }
    cfg = resolve(data, components)
    p = Pipeline("once")
    m = p.add(GIVE_MODEL, cfg["model"])
    e = p.add(GIVE_EXAMPLES, cfg["examples"])
    b = p.add(GIVE_BLESSING, cfg["blessing"])
    p.add(register, cfg["register"], model=m["out"], examples=e["out"], blessing=b["out"])
    return p, cfg


def _run(p, cfg, uri) -> dict[str, str]:
    opts = runner.RunOptions(tracking_uri=uri, show_progress=False)
    results, _ = runner.run(p, cfg, opts, out=io.StringIO())
    return {r.name: r.status for r in results}


@pytest.mark.slow
def test_deleted_registered_model_makes_register_run_again(trained, tmp_path, sqlite_uri, capsys):
    p, cfg = _pipeline(tmp_path, trained, blessing(tmp_path / "blessing", True, None))
    assert _run(p, cfg, sqlite_uri)["register"] == "ran"
    assert _run(p, cfg, sqlite_uri)["register"] == "cached"
    capsys.readouterr()

    MlflowClient(sqlite_uri, registry_uri=sqlite_uri).delete_registered_model(NAME_OF_MODEL)
    assert _run(p, cfg, sqlite_uri)["register"] == "ran"
    line = re.search(r"▶ register: running \((.*)\)", capsys.readouterr().err).group(1)
    assert line.startswith(
        f"its external effect is gone: version 1 of registered model '{NAME_OF_MODEL}'"
    )
    assert versions(sqlite_uri) == ["1"] and aliases(sqlite_uri)["champion"] == "1"

    client = MlflowClient(sqlite_uri, registry_uri=sqlite_uri)
    client.delete_registered_model_alias(NAME_OF_MODEL, "champion")
    assert _run(p, cfg, sqlite_uri)["register"] == "ran"
    assert "alias @champion of" in capsys.readouterr().err
    assert aliases(sqlite_uri) == {"challenger": "1", "champion": "1"}


def test_pending_logged_model_of_a_dead_run_is_marked_failed(sqlite_uri):
    client = MlflowClient(sqlite_uri)
    exp = client.create_experiment("pending")
    dead = client.create_run(exp)
    live = client.create_run(exp)
    stuck = client.create_logged_model(exp, source_run_id=dead.info.run_id, name="m")
    busy = client.create_logged_model(exp, source_run_id=live.info.run_id, name="m")
    client.set_terminated(dead.info.run_id, status="KILLED")
    with tracking(sqlite_uri):
        assert finalize_pending_models(exp) == 1
    assert client.get_logged_model(stuck.model_id).status == LoggedModelStatus.FAILED
    assert client.get_logged_model(busy.model_id).status == LoggedModelStatus.PENDING
