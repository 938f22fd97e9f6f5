"""validate_data: the checks on numbers, then drifted real data stopped before training."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import fashion_mnist_slice, write_idx
from convflow.components.validate_data import Check, Params
from convflow.components.validate_data.profile import build, compare, from_metrics, to_metrics
from convflow.pipelines.cli import main
from mlflow.tracking import MlflowClient

NAMES = [f"c{i}" for i in range(4)]


def _profile(labels=(25, 25, 25, 25), mean=(72.0,), std=(90.0,), sizes=None, rejected=0):
    sizes = sizes or {"28x28x1": 100}
    return build("train", sum(labels), NAMES, labels, mean, std, sizes, rejected, 100 + rejected)


def _by_check(findings):
    return {f.check: f for f in findings}


def test_same_data_trips_nothing():
    found = _by_check(compare(_profile(), _profile(), Params()))
    assert set(found) == {
        "label_distribution", "channel_mean", "channel_std", "image_size",
        "rejected_share", "min_class_share",
    }  # fmt: skip
    assert not any(f.tripped for f in found.values())
    assert found["label_distribution"].value == 0.0


def test_a_vanished_class_trips_label_distribution_with_old_and_new_share():
    f = _by_check(compare(_profile(labels=(0, 34, 33, 33)), _profile(), Params()))
    lab = f["label_distribution"]
    assert lab.tripped and lab.value == pytest.approx(0.25)
    assert lab.line("champion version 3") == (
        "label_distribution: class 'c0' share 0.250 in the data of champion version 3 -> 0.000 "
        "now (0.25 > limit 0.05, fail)"
    )
    assert f["min_class_share"].tripped  # a missing class, even without a champion


def test_brighter_images_trip_channel_mean_in_units_of_the_old_std():
    f = _by_check(compare(_profile(mean=(117.0,)), _profile(), Params()))
    assert f["channel_mean"].value == pytest.approx(45 / 90)
    assert f["channel_mean"].tripped and not f["channel_std"].tripped


def test_image_sizes_are_compared_as_distributions():
    mixed = _profile(sizes={"28x28x1": 50, "64x64x3": 50})
    f = _by_check(compare(mixed, _profile(), Params()))
    assert f["image_size"].value == pytest.approx(0.5)
    assert f["image_size"].action == "warn"


def test_without_a_champion_only_thresholds_are_checked():
    found = _by_check(compare(_profile(rejected=5), None, Params()))
    assert set(found) == {"rejected_share", "min_class_share"}
    assert found["rejected_share"].tripped  # 5 / 105 > 0.01


def test_limits_and_actions_come_from_params():
    loose = Params(label_distribution=Check(0.5, "warn"))
    f = _by_check(compare(_profile(labels=(0, 34, 33, 33)), _profile(), loose))
    assert not f["label_distribution"].tripped
    only_action = Params(label_distribution=Check(action="warn"))  # --set ...action=warn
    assert only_action.rule("label_distribution") == (0.05, "warn")
    assert only_action.rule("image_size") == (0.1, "warn")


def test_profile_round_trips_through_mlflow_metrics():
    p = _profile(labels=(10, 20, 30, 40), mean=(1.5, 2.5, 3.5), std=(4.0, 5.0, 6.0))
    back = from_metrics(to_metrics(p), NAMES)
    for key in ("label_share", "channel_mean", "channel_std", "image_sizes", "rejected_share"):
        assert back[key] == p[key], key


def test_bad_check_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("pipeline: {name: x}\nvalidate_data: {channel_mean: {limit: 1, action: stop}}\n")
    assert main(["validate", str(cfg)]) == 2
    assert capsys.readouterr().err == (
        "error: validate_data.channel_mean.action: 'stop' is not allowed; "
        "expected one of 'warn', 'fail'\n"
    )


def _idx(folder, images, labels) -> str:
    folder.mkdir()
    test_images, test_labels = fashion_mnist_slice("test", 200)
    files = {
        "train_images": write_idx(folder / "train-images.gz", images),
        "train_labels": write_idx(folder / "train-labels.gz", labels),
        "test_images": write_idx(folder / "test-images.gz", test_images),
        "test_labels": write_idx(folder / "test-labels.gz", test_labels),
    }
    return "{" + ", ".join(f"{k}: {v}" for k, v in files.items()) + "}"


@pytest.mark.slow
def test_drifted_data_is_stopped_before_training_and_passes_with_warn(tmp_path, capsys):
    images, labels = fashion_mnist_slice("train", 700)
    keep = labels != 1  # every Trouser gone
    clean = _idx(tmp_path / "clean", images, labels)
    drifted = _idx(tmp_path / "drifted", images[keep], labels[keep])
    cfg = tmp_path / "c.yaml"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def run(idx, *sets):
        cfg.write_text(
            f"pipeline: {{name: drift, artifact_root: {tmp_path / 'store'}}}\n"
            f"ingest: {{idx: {idx}}}\n"
            "train: {epochs: 1, batch_size: 64, model_kwargs: {filters: [4, 8]}}\n"
            "evaluate: {min_accuracy: 0.1}\n"
        )
        args = ["run", str(cfg), "--tracking-uri", uri, "--quiet"]
        code = main([*args, *(x for s in sets for x in ("--set", s))])
        return code, capsys.readouterr()

    code, _ = run(clean)  # the champion, and the profile of its data
    assert code == 0
    code, out = run(drifted)
    assert code == 1
    (line,) = [x for x in out.out.splitlines() if x.startswith("error: ")]
    assert re.fullmatch(
        r"error: validate_data: label_distribution: class 'Trouser' share 0\.\d{3} in the data "
        r"of champion version 1 -> 0\.000 now \(0\.\d+ > limit 0\.05, fail\); stopped before "
        r"training \(set validate_data\.label_distribution\.action=warn or a larger limit to "
        r"train anyway\)",
        line,
    ), line
    assert re.search(r"\| train +\| not run", out.out)

    code, out = run(drifted, "validate_data.label_distribution.action=warn")
    assert code == 0, out.out + out.err
    assert "validate_data: warning: label_distribution: class 'Trouser'" in out.err
    assert re.search(r"\| train +\| ran", out.out)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("drift")
    (step,) = client.search_runs(
        [exp.experiment_id],
        filter_string="tags.component = 'validate_data' and attributes.status = 'FINISHED' "
        "and tags.data_warnings != ''",
    )
    assert step.data.tags["data_warnings"].startswith("label_distribution: class 'Trouser'")
    files = {a.path for a in client.list_artifacts(step.info.run_id, "data_validation")}
    assert files == {"data_validation/data_validation.json", "data_validation/data_drift.png"}
    assert step.data.metrics["check.label_distribution"] > 0.05
    assert np.isclose(sum(v for k, v in step.data.metrics.items() if ".label_share." in k), 1.0)
