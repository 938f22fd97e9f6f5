"""Promotion under the lease, alias history, rollback, broken champions: a real mlflow server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from convflow.components import alias_history
from convflow.components.lease import (
    EXPIRES_TAG,
    OWNER_TAG,
    LeaseUnavailable,
    lease_name,
    promotion_lease,
)
from convflow.components.promotion import CHAMPION, alias_version, promote
from convflow.pipelines.cli import main
from mlflow import MlflowClient

TESTS = Path(__file__).parent


def client_for(uri: str) -> MlflowClient:
    return MlflowClient(uri, registry_uri=uri)


def make_versions(client, model: str, blessed: list[bool], tmp_path: Path) -> list[str]:
    """Registers one real (tiny) artifact per entry; versions tagged convflow.blessed."""
    exp = client.get_experiment_by_name("promotion-tests")
    exp_id = exp.experiment_id if exp else client.create_experiment("promotion-tests")
    versions = []
    for i, ok in enumerate(blessed):
        run = client.create_run(exp_id)
        f = tmp_path / f"weights-{i}.txt"
        f.write_text(f"version {i}")
        client.log_artifact(run.info.run_id, str(f), "model")
        client.set_terminated(run.info.run_id)
        if i == 0:
            client.create_registered_model(model)
        mv = client.create_model_version(
            model,
            f"{run.info.artifact_uri}/model",
            run.info.run_id,
            tags={"convflow.blessed": str(ok).lower()},
        )
        versions.append(str(mv.version))
    return versions


def blessing(compared: str | None, blessed=True, compare=True) -> dict:
    return {
        "blessed": blessed,
        "reasons": ["test"],
        "champion": {"version": compared} if compared else None,
        "compare_with_champion": compare,
    }


@pytest.fixture
def model(mlflow_server, tmp_path):
    """A fresh registered model with versions 1, 2, 3 (blessed) and 4 (never blessed)."""
    name = f"m-{uuid.uuid4().hex[:8]}"
    client = client_for(mlflow_server)
    make_versions(client, name, [True, True, True, False], tmp_path)
    assert promote(client, name, "1", blessing(None))[0]
    return name


@pytest.mark.parametrize("slow_first", [True, False], ids=["slow-reader-first", "fast-first"])
def test_concurrent_promotions_never_skip_a_comparison(mlflow_server, model, tmp_path, slow_first):
    """Two runs blessed against champion 1 race; one reads, pauses, then sets @champion.

    Without the lease the paused one overwrote the other's promotion although it was never
    compared with it. With it, exactly one is promoted and every recorded champion move
    starts from the version its blessing was compared with.
    """
    go = tmp_path / "go"
    procs, pauses = [], {"2": "3", "3": "0"} if slow_first else {"2": "0", "3": "3"}
    for version in ("2", "3"):
        ready = tmp_path / f"ready-{version}"
        env = {
            **os.environ,
            "CONVFLOW_TEST_PROMOTION_PAUSE_S": pauses[version],
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        }
        args = [mlflow_server, model, version, "1", str(ready), str(go)]
        procs.append(
            subprocess.Popen(
                [sys.executable, str(TESTS / "promotion_race.py"), *args],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{v}").exists() for v in ("2", "3")):
        assert time.monotonic() < deadline, "promoters did not start"
        time.sleep(0.1)
    go.touch()
    # The paused promoter goes first: it reads @champion=1, then holds the lease 3 s.
    outputs = [p.communicate(timeout=120)[0].strip().splitlines()[-1].split("\t") for p in procs]
    promoted = [v for v, (ok, _) in zip(("2", "3"), outputs, strict=True) if ok == "True"]
    assert len(promoted) == 1
    loser = next(reason for ok, reason in outputs if ok == "False")
    assert f"champion moved from 1 to {promoted[0]} after evaluation" in loser

    client = client_for(mlflow_server)
    assert alias_version(client, model, CHAMPION) == promoted[0]
    champion_moves = alias_history.moves(client, model, CHAMPION)
    assert [(m.from_version, m.to_version) for m in champion_moves] == [
        ("1", promoted[0]),
        ("", "1"),
    ]
    assert lease_name(model) not in {m.name for m in client.search_registered_models()}


def test_an_expired_lease_of_a_dead_holder_is_broken(mlflow_server, model):
    client = client_for(mlflow_server)
    dead = {OWNER_TAG: "gone-host:1:dead", EXPIRES_TAG: str(time.time() - 5)}
    client.create_registered_model(lease_name(model), tags=dead)
    t0 = time.monotonic()
    ok, reason = promote(client, model, "2", blessing("1"))
    assert ok, reason
    assert time.monotonic() - t0 < 30


def test_a_live_lease_makes_the_other_wait_then_give_up(mlflow_server, model):
    client = client_for(mlflow_server)
    with promotion_lease(client, model) as held:
        assert held.confirm()
        waiting = promotion_lease(client, model, wait_s=1)
        with pytest.raises(LeaseUnavailable, match=r"is held by .*waited 1s"), waiting:
            pass
    with promotion_lease(client, model, wait_s=1) as again:  # released: free at once
        assert again.confirm()


def test_history_and_rollback_through_the_cli(mlflow_server, model, capsys):
    client = client_for(mlflow_server)
    assert promote(client, model, "2", blessing("1"), run_id="run-two")[0]
    assert promote(client, model, "3", blessing("2"), run_id="run-three")[0]
    base = ["--tracking-uri", mlflow_server]

    assert main(["rollback", model, *base]) == 0
    assert f"{model}@champion 3 -> 2" in capsys.readouterr().out
    assert alias_version(client, model, CHAMPION) == "2"

    assert main(["rollback", model, "--to", "4", *base]) == 1  # never blessed
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {model}: version 4 was never blessed; add --force to make it champion anyway"
    )
    assert main(["rollback", model, "--to", "4", "--force", "--reason", "hotfix", *base]) == 0
    assert alias_version(client, model, CHAMPION) == "4"
    capsys.readouterr()

    assert main(["history", model, "--alias", "champion", *base]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["when", "(UTC)", "alias", "from", "to", "trigger"]
    rows = [line.split(None, 7) for line in lines[1:]]  # date, time, alias, from, to, ...
    assert [(r[3], r[4]) for r in rows] == [
        ("2", "4"),
        ("3", "2"),
        ("2", "3"),
        ("1", "2"),
        ("-", "1"),
    ]
    assert rows[0][-1].endswith("rollback: hotfix (forced)")
    assert rows[1][-1].endswith("rollback")
    assert "run-three" in lines[3]


def test_rollback_without_history_asks_for_a_version(mlflow_server, tmp_path, capsys):
    name = f"m-{uuid.uuid4().hex[:8]}"
    client = client_for(mlflow_server)
    make_versions(client, name, [True], tmp_path)
    client.set_registered_model_alias(name, CHAMPION, "1")  # set by hand: no history
    assert main(["rollback", name, "--tracking-uri", mlflow_server]) == 1
    assert "name one with --to VERSION" in capsys.readouterr().err


def test_a_broken_champion_has_a_way_out(mlflow_server, model, tmp_path):
    """Champion 2's files are deleted: evaluate names the remedies; both remedies work."""
    from convflow.components.base import ComponentError
    from convflow.components.evaluate.executor import evaluate_champion
    from convflow.components.serving.mlflow_io import tracking
    from convflow.components.tasks import get as get_task
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = client_for(mlflow_server)
    assert promote(client, model, "2", blessing("1"))[0]
    artifacts = client.get_run(client.get_model_version(model, "2").run_id).info.artifact_uri
    with tracking(mlflow_server):
        # The artifact store loses the files (a deleted folder, a moved bucket).
        get_artifact_repository(artifacts).delete_artifacts("model")
        with pytest.raises(ComponentError) as err:
            evaluate_champion(get_task("classification"), model, [], [], ["a"], 8)
    message = str(err.value)
    assert "\n" not in message
    assert f"convflow rollback {model} --to VERSION" in message
    assert "evaluate.compare_with_champion=false" in message

    # Remedy 1: promote on thresholds alone, said so and recorded.
    ok, reason = promote(client, model, "3", blessing(None, compare=False), run_id="thr")
    assert ok and "thresholds only (evaluate.compare_with_champion=false)" in reason
    assert "champion 2 -> version 3 without comparing" in reason
    # Remedy 2: roll back off the broken version.
    assert promote(client, model, "2", blessing(None, compare=False))[0]  # broken again
    assert main(["rollback", model, "--to", "1", "--tracking-uri", mlflow_server]) == 0
    assert alias_version(client, model, CHAMPION) == "1"
    last = alias_history.moves(client, model, CHAMPION)[0]
    assert (last.from_version, last.to_version, last.reason) == ("2", "1", "rollback")
