"""Values that `convflow validate` used to accept and that failed only mid-run."""

from __future__ import annotations

import pytest
from convflow.components.train.spec import FIRST_LAYER_INITS
from convflow.pipelines.cli import main

CONFIG = "configs/fashion_mnist_lenet.yaml"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.learning_rate=.nan", "error: train.learning_rate: nan is not a finite number"),
        ("train.warmup_epochs=.inf", "error: train.warmup_epochs: inf is not a finite number"),
        ("pipeline.model_name=''", "error: pipeline.model_name: '' is empty; give a name"),
        ("pipeline.model_name='  '", "error: pipeline.model_name: '  ' is empty; give a name"),
        (
            "preprocess.beam_args=[--runnerr=Flink]",
            "error: preprocess: beam_args: '--runnerr=Flink' is not a Beam pipeline option",
        ),
        (
            "train.first_layer_init={name: gabour}",
            "error: train: first_layer_init.name='gabour' is unknown; expected one of",
        ),
    ],
)
def test_rejected_at_validate_with_one_line(override, message, capsys, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    assert main(["validate", CONFIG, "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message)
    assert "\n" not in err


def test_known_beam_flags_pass(capsys, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    flags = (
        "[--flink_master=localhost:8081, --direct_num_workers=2, --save_main_session, "
        "--dask_client_address=tcp://127.0.0.1:8786]"
    )
    assert main(["validate", CONFIG, "--set", f"preprocess.beam_args={flags}"]) == 0
    assert "flink_master" in capsys.readouterr().out


def test_first_layer_init_names_match_the_models_registry():
    from convflow.models.initializers import _BY_NAME

    assert tuple(sorted(_BY_NAME)) == FIRST_LAYER_INITS
