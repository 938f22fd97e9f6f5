"""``convflow sweep`` with fake components: grid, cache sharing, resume, the table, dry-run."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from convflow.components.base import MODEL, Context, component
from convflow.pipelines import cli, runner, sweep, sweep_report
from convflow.pipelines.config import ConfigError, apply_overrides, read_yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
LENET = REPO / "configs" / "fashion_mnist_lenet.yaml"


def _write(path: Path, data) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _register(ctx: Context) -> None:
    with open(ctx.params.log, "a") as f:
        f.write("register\n")


@pytest.fixture
def fake_sweep(fakeflow, tmp_path, sqlite_uri):
    """run(sweep dict, with_register=False) -> (rows, sweep run id, calls made)."""
    from fakeflow.pipeline import build
    from fakeflow.steps import Params

    register = component(name="register", inputs={"model": MODEL}, outputs={}, params=Params)(
        _register
    )
    log, root = tmp_path / "calls.log", str(tmp_path / "store")
    base = _write(tmp_path / "base.yaml", {"double": {"value": 1}})

    def run(data, with_register=False):
        spec = sweep.load(_write(tmp_path / "sweep.yaml", {"base": "base.yaml", **data}))

        def build_point(overrides):
            sections = apply_overrides(read_yaml(base), overrides)
            pipeline, cfg = build(root, str(log), **sections)
            if with_register:
                consume = pipeline.steps["consume"]
                pipeline.add(register, consume.params, model=consume["model"])
            return pipeline, cfg

        log.write_text("")
        opts = runner.RunOptions(tracking_uri=sqlite_uri, show_progress=False)
        rows, sweep_id = sweep.run_sweep(spec, build_point, opts, out=io.StringIO())
        return rows, sweep_id, log.read_text().split()

    run.root = root
    return run


GRID = {
    "grid": {"consume.value": [1, 2]},
    "seeds": [0, 1],
    "seed_key": "consume.seed",
    "metrics": ["double.value", "consume.value"],
}


def test_grid_expands_to_every_combination_times_every_seed(tmp_path):
    _write(tmp_path / "base.yaml", {})
    spec = sweep.load(
        _write(
            tmp_path / "s.yaml",
            {
                "base": "base.yaml",
                "set": {"train.epochs": 2},
                "grid": {"train.learning_rate": [0.1, 0.01], "preprocess.steps": [[], ["gcn"]]},
                "points": [{"train.model": "vgg11"}],
                "seeds": [0, 1, 2],
                "metrics": ["evaluate.accuracy"],
            },
        )
    )
    assert len(spec.points) == (2 * 2 + 1) * 3
    assert spec.knob_names == ("train.learning_rate", "preprocess.steps", "train.model")
    assert [p.label() for p in spec.points[:4]] == [
        "train.learning_rate=0.1 preprocess.steps=[] seed=0",
        "train.learning_rate=0.1 preprocess.steps=[] seed=1",
        "train.learning_rate=0.1 preprocess.steps=[] seed=2",
        'train.learning_rate=0.1 preprocess.steps=["gcn"] seed=0',
    ]
    assert spec.points[-1].label() == "train.model=vgg11 seed=2"
    assert spec.points[3].overrides(spec) == [
        "train.epochs=2",
        "train.learning_rate=0.1",
        'preprocess.steps=["gcn"]',
        "train.seed=0",
    ]
    assert spec.register is False
    # The override strings are --set strings: they parse back to the typed values.
    assert apply_overrides({}, spec.points[3].overrides(spec))["preprocess"] == {"steps": ["gcn"]}


def test_a_sweep_of_points_only_has_no_extra_base_point(tmp_path):
    _write(tmp_path / "base.yaml", {})
    data = {"base": "base.yaml", "points": [{"a.b": 1}, {"a.b": 2}], "metrics": ["e.a"]}
    spec = sweep.load(_write(tmp_path / "s.yaml", {**data, "seeds": [0, 1]}))
    assert [p.label() for p in spec.points] == [
        "a.b=1 seed=0",
        "a.b=1 seed=1",
        "a.b=2 seed=0",
        "a.b=2 seed=1",
    ]


@pytest.mark.slow  # several fake pipeline runs, each with MLflow runs
def test_points_share_upstream_steps_through_the_cache(fake_sweep, sqlite_uri):
    rows, sweep_id, calls = fake_sweep(GRID)
    # produce and double are the same for all four points: they run once.
    assert calls == ["produce", "double", "consume", "consume", "consume", "consume"]
    assert [r.statuses for r in rows][1] == {
        "produce": "cached",
        "double": "cached",
        "consume": "ran",
    }
    client = MlflowClient(sqlite_uri)
    assert client.get_run(sweep_id).info.status == "FINISHED"
    for r in rows:
        assert client.get_run(r.run_id).data.tags["mlflow.parentRunId"] == sweep_id


@pytest.mark.slow  # several fake pipeline runs, each with MLflow runs
def test_table_numbers_are_the_runs_metrics(fake_sweep, sqlite_uri, tmp_path):
    _, sweep_id, _ = fake_sweep(GRID)
    client = MlflowClient(sqlite_uri)
    arts = {a.path for a in client.list_artifacts(sweep_id)}
    assert arts == {"sweep_points.csv", "sweep_table.md", "sweep_consume.value.png"}
    got = Path(client.download_artifacts(sweep_id, "sweep_points.csv", str(tmp_path)))
    table = list(csv.DictReader(got.open()))
    assert len(table) == 4
    for line in table:
        point = client.get_run(line["run_id"])
        children = client.search_runs(
            [point.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{line['run_id']}'",
        )
        producers = {c.info.run_name: c.info.run_id for c in children}
        for step in ("double", "consume"):
            producer = producers.get(step) or point.data.tags[f"convflow.cached_from.{step}"]
            assert float(line[f"{step}.value"]) == client.get_run(producer).data.metrics["value"]
    # consume = double (2) + value + seed: value 1 -> 3, 4; value 2 -> 4, 5.
    assert [float(line["consume.value"]) for line in table] == [3.0, 4.0, 4.0, 5.0]
    md = Path(client.download_artifacts(sweep_id, "sweep_table.md", str(tmp_path))).read_text()
    assert "| 1 | 2 | 2.0000 ± 0.0000 | 3.5000 ± 0.7071 |" in md
    assert "| 2 | 2 | 2.0000 ± 0.0000 | 4.5000 ± 0.7071 |" in md


@pytest.mark.slow  # several fake pipeline runs, each with MLflow runs
def test_interrupted_sweep_resumes_with_finished_points_cached(fake_sweep, sqlite_uri, monkeypatch):
    real_run, calls_made = runner.run, []

    def run_then_interrupt(*args, **kwargs):
        if len(calls_made) == 2:
            raise KeyboardInterrupt
        calls_made.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(runner, "run", run_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fake_sweep(GRID)
    client = MlflowClient(sqlite_uri)
    (killed,) = client.search_runs(
        [client.get_experiment_by_name("fake").experiment_id],
        filter_string="attributes.run_name = 'sweep-sweep'",
    )
    assert killed.info.status == "KILLED"
    monkeypatch.setattr(runner, "run", real_run)
    rows, sweep_id, calls = fake_sweep(GRID)
    assert sweep_id == killed.info.run_id  # the same sweep run, resumed
    assert calls == ["consume", "consume"]  # points 3 and 4 only
    assert [set(r.statuses.values()) for r in rows[:2]] == [{"cached"}, {"cached"}]
    assert client.get_run(sweep_id).info.status == "FINISHED"


@pytest.mark.slow  # several fake pipeline runs, each with MLflow runs
def test_register_runs_only_when_the_sweep_asks(fake_sweep):
    one = {"grid": {"consume.value": [1]}, "metrics": ["consume.value"]}
    rows, _, calls = fake_sweep(one, with_register=True)
    assert "register" not in calls
    assert rows[0].statuses["register"] == "not run"
    rows, _, calls = fake_sweep({**one, "register": True}, with_register=True)
    assert calls == ["register"]


@pytest.mark.slow  # several fake pipeline runs, each with MLflow runs
def test_a_failed_point_is_reported_and_the_others_still_run(fake_sweep, sqlite_uri):
    rows, sweep_id, calls = fake_sweep(
        {"grid": {"double.fail": [True, False]}, "metrics": ["consume.value"]}
    )
    assert rows[0].error == "double: asked to fail"
    assert rows[0].metrics == {}
    assert rows[1].error == "" and rows[1].metrics == {"consume.value": 3.0}
    assert calls == ["produce", "double", "double", "consume"]
    assert MlflowClient(sqlite_uri).get_run(sweep_id).info.status == "FAILED"


def test_dry_run_lists_the_points_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a run would create the embedded store (convflow_runs)
    path = _write(
        tmp_path / "s.yaml",
        {
            "name": "lr",
            "base": str(LENET),
            "set": {"train.epochs": 1},
            "grid": {"train.learning_rate": [0.001, 0.002]},
            "seeds": [0, 1],
            "metrics": ["evaluate.accuracy"],
        },
    )
    assert cli.main(["sweep", path, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"sweep lr: 4 points of {LENET}",
        "    1. train.learning_rate=0.001 seed=0",
        "    2. train.learning_rate=0.001 seed=1",
        "    3. train.learning_rate=0.002 seed=0",
        "    4. train.learning_rate=0.002 seed=1",
        "metrics: evaluate.accuracy; register: false",
    ]
    assert not (tmp_path / "convflow_runs").exists()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_check_out(path, capsys):
    assert cli.main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "register: false" in out and " 1. " in out


BAD = [
    ({"base": "base.yaml", "metrics": ["evaluate.accuracy"]}, "names no point"),
    ({"base": "nope.yaml", "grid": {"train.seed": [1]}, "metrics": ["e.a"]}, "no such file"),
    ({"base": "base.yaml", "grid": {"train.seed": 1}, "metrics": ["e.a"]}, "non-empty list"),
    ({"base": "base.yaml", "grid": {"seed": [1]}, "metrics": ["e.a"]}, "expected SECTION.KEY"),
    ({"base": "base.yaml", "grid": {"train.seed": [1]}}, "metrics: expected a list"),
    ({"base": "base.yaml", "grid": {"a.b": [1]}, "metrics": ["e.a"], "seeds": [-1]}, "seeds"),
    ({"base": "base.yaml", "grid": {"a.b": [1]}, "metrics": ["e.a"], "gird": 1}, "'gird'"),
    ({"base": "base.yaml", "grid": {"a.b": [1]}, "metrics": ["e.a"], "register": "y"}, "register"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_sweep_file_is_one_line_and_exit_2(tmp_path, capsys, data, message):
    _write(tmp_path / "base.yaml", {})
    path = _write(tmp_path / "s.yaml", data)
    assert cli.main(["sweep", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep {path}: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_a_point_the_base_config_rejects_is_one_line_before_any_run(tmp_path, capsys):
    path = _write(
        tmp_path / "s.yaml",
        {"base": str(LENET), "grid": {"train.no_such_knob": [1]}, "metrics": ["evaluate.loss"]},
    )
    assert cli.main(["sweep", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_knob" in err
    assert len(err.strip().splitlines()) == 1


def test_max_parallel_below_one_is_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--max-parallel", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --max-parallel 0: expected a number of points >= 1\n"


def test_report_mean_and_spread():
    assert sweep_report.mean_spread([3.0, 4.0]) == pytest.approx((3.5, 0.70710678))
    assert sweep_report.mean_spread([2.0]) == (2.0, 0.0)
    with pytest.raises(ConfigError):
        sweep.load("/no/such/sweep.yaml")


def test_report_of_a_list_knob_groups_and_plots_it(tmp_path):
    _write(tmp_path / "base.yaml", {})
    steps = [["crop"], ["crop", "gcn", "standardize"]]
    data = {"base": "base.yaml", "points": [{"preprocess.steps": s} for s in steps]}
    spec = sweep.load(_write(tmp_path / "s.yaml", {**data, "metrics": ["evaluate.accuracy"]}))
    rows = [sweep.PointResult(p, "r", {}, {"evaluate.accuracy": 0.5}) for p in spec.points]
    files = sweep_report.write(spec, rows, tmp_path / "out")
    assert [f.name for f in files][-1] == "sweep_preprocess.steps.png"
    assert files[-1].stat().st_size > 0
    assert [sweep_report._tick(s) for s in steps] == ["crop", "crop+gcn+standardize"]
    table = (tmp_path / "out" / "sweep_table.md").read_text().splitlines()
    assert table[2:] == [
        '| ["crop"] | 1 | 0.5000 |',
        '| ["crop", "gcn", "standardize"] | 1 | 0.5000 |',
    ]


def test_final_model_train_split_metric_shares_the_test_metrics_panel():
    metrics = ["train.train_split_accuracy", "evaluate.accuracy", "train.loss", "evaluate.loss"]
    assert sweep_report._panels(metrics) == {
        "accuracy": ["train.train_split_accuracy", "evaluate.accuracy"],
        "loss": ["train.loss", "evaluate.loss"],
    }
    assert sweep_report.series_label("train.train_split_accuracy") == "train (final model)"
    assert sweep_report.series_label("evaluate.accuracy") == "test"


def test_plots_redraw_from_the_points_csv(tmp_path):
    _write(tmp_path / "base.yaml", {})
    data = {
        "base": "base.yaml",
        "points": [{"a.k": [4, 8]}, {"a.k": [16, 32]}, {"b.wd": 0.3}],
        "seeds": [0, 1],
        "metrics": ["train.train_split_accuracy", "evaluate.accuracy"],
    }
    spec = sweep.load(_write(tmp_path / "s.yaml", data))
    rows = [
        sweep.PointResult(p, f"r{p.index}", {}, {"evaluate.accuracy": 0.5 + p.index / 100})
        for p in spec.points
    ]
    csv_path = sweep_report.points_csv(spec, rows, tmp_path / "points.csv")
    again = sweep_report.rows_from_csv(spec, csv_path)
    assert [(r.point, r.run_id, r.metrics) for r in again] == [
        (r.point, r.run_id, r.metrics) for r in rows
    ]
    assert sweep_report.markdown(spec, again) == sweep_report.markdown(spec, rows)
    out = sweep_report.overview_plot(spec, again, tmp_path / "all.png")
    assert out.stat().st_size > 0
