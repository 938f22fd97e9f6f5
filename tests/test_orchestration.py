"""Single steps for orchestrators (--only), trigger tags, run groups, schedule config and
the units printed for the OS scheduler. Fake components; real MLflow stores."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from convflow.pipelines import runner
from convflow.pipelines.cli import main
from convflow.pipelines.config import ConfigError
from convflow.pipelines.dag import PipelineError
from convflow.pipelines.oncalendar import to_oncalendar
from mlflow.tracking import MlflowClient


@pytest.fixture
def fake(fakeflow, tmp_path, sqlite_uri):
    from fakeflow.pipeline import build

    log = tmp_path / "calls.log"
    root = str(tmp_path / "store")

    def run(**opts):
        log.write_text("")
        pipeline, cfg = build(root, str(log))
        options = runner.RunOptions(tracking_uri=sqlite_uri, show_progress=False, **opts)
        results, run_id = runner.run(pipeline, cfg, options, out=io.StringIO())
        return {r.name: r.status for r in results}, log.read_text().split(), run_id

    return run


def _children(uri: str, run_id: str) -> dict[str, object]:
    client = MlflowClient(uri)
    parent = client.get_run(run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return {r.info.run_name: r for r in runs}


def test_only_without_published_inputs_names_the_missing_upstream_step(fake):
    with pytest.raises(PipelineError) as e:
        fake(only="consume")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("--only consume: upstream step 'produce' has no published output")
    assert "convflow run CONFIG --to double" in message


def test_only_runs_exactly_that_step_from_the_store(fake):
    fake(only="produce")
    statuses, calls, _ = fake(only="double")
    assert calls == ["double"]
    assert statuses == {"produce": "not run", "double": "ran", "consume": "not run"}
    statuses, calls, _ = fake(only="consume")
    assert calls == ["consume"]
    statuses, calls, _ = fake()  # the whole pipeline now finds every step published
    assert calls == [] and set(statuses.values()) == {"cached"}


def test_only_an_unknown_step_is_an_error(fake):
    with pytest.raises(PipelineError, match="unknown step 'nope'; steps: produce, double"):
        fake(only="nope")


def test_parent_runs_carry_the_trigger(fake, sqlite_uri):
    _, _, manual = fake()
    _, _, scheduled = fake(trigger="schedule", tags={"schedule": "0 2 * * *"})
    client = MlflowClient(sqlite_uri)
    assert client.get_run(manual).data.tags["trigger"] == "manual"
    tags = client.get_run(scheduled).data.tags
    assert (tags["trigger"], tags["schedule"]) == ("schedule", "0 2 * * *")


def test_steps_of_one_run_group_share_one_parent_run(fake, sqlite_uri):
    ids = [fake(only=s, run_group="dag-run-1", trigger="airflow")[2] for s in ("produce", "double")]
    ids.append(fake(only="consume", run_group="dag-run-1", trigger="airflow")[2])
    assert len(set(ids)) == 1
    parent = MlflowClient(sqlite_uri).get_run(ids[0])
    assert parent.data.tags["convflow.summary"] == "produce=ran double=ran consume=ran"
    assert parent.info.status == "FINISHED"
    assert sorted(_children(sqlite_uri, ids[0])) == ["consume", "double", "produce"]
    other = fake(only="consume", run_group="dag-run-2")[2]
    assert other != ids[0]


def test_cli_only_with_from_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("pipeline: {name: x}\n")
    assert main(["run", str(cfg), "--only", "train", "--from", "ingest"]) == 2
    assert capsys.readouterr().err == "error: --only STEP runs one step; drop --from/--to\n"


def _config(tmp_path, schedule: str) -> str:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"pipeline: {{name: nightly, artifact_root: {tmp_path / 's'}}}\n{schedule}")
    return str(cfg)


@pytest.mark.parametrize(
    "section, message",
    [
        ("schedule: {cron: '61 * * * *'}", "schedule: cron: '61 * * * *' is not a cron"),
        ("schedule: {timezone: Mars/Base}", "schedule: timezone: 'Mars/Base' is not an IANA"),
        ("schedule: {catchup: all}", "schedule.catchup: 'all' is not allowed"),
        ("schedule: {every: 3}", "schedule.every: unknown key"),
    ],
)
def test_bad_schedule_section_is_one_line(tmp_path, capsys, section, message):
    assert main(["validate", _config(tmp_path, section)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_schedule_section_is_shown_but_not_hashed(tmp_path, capsys):
    from convflow.pipelines.cli import load_config

    with_schedule, _ = load_config(_config(tmp_path, "schedule: {cron: '0 3 * * *'}"), [])
    without, _ = load_config(_config(tmp_path, ""), [])
    assert with_schedule.hash == without.hash  # when a run happens changes no result
    assert "cron: 0 3 * * *" in with_schedule.to_yaml()


def test_print_cron_is_a_crontab_entry(tmp_path, capsys):
    cfg = _config(tmp_path, "schedule: {cron: '30 2 * * 1-5', timezone: Europe/Berlin}\n")
    assert main(["schedule", cfg, "--print-cron"]) == 0
    _, tz, entry = capsys.readouterr().out.splitlines()
    assert tz == "CRON_TZ=Europe/Berlin"
    assert entry.startswith("30 2 * * 1-5 cd ")
    assert f"run {cfg} --trigger schedule --tag 'schedule=30 2 * * 1-5' --wait 3600" in entry


@pytest.mark.parametrize(
    "cron, calendar",
    [
        ("0 2 * * *", "*-*-* 02:00:00 UTC"),
        ("*/15 8-18 * * mon-fri", "Mon..Fri *-*-* 08..18:00/15:00 UTC"),
        ("5 4 1,15 jan,jul *", "*-1,7-1,15 04:05:00 UTC"),
        ("0 0 * * 0", "Sun *-*-* 00:00:00 UTC"),
    ],
)
def test_cron_to_oncalendar(cron, calendar):
    assert to_oncalendar(cron, "UTC") == calendar
    if shutil.which("systemd-analyze"):  # systemd itself agrees it is a calendar spec
        done = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True)
        assert done.returncode == 0, done.stderr


def test_cron_that_systemd_cannot_say_is_refused():
    with pytest.raises(ConfigError, match="day-of-month OR day-of-week"):
        to_oncalendar("0 0 1 * 1", "UTC")
    with pytest.raises(ConfigError, match="no step over a range"):
        to_oncalendar("0 8-18/2 * * *", "UTC")


def test_print_systemd_gives_service_and_timer(tmp_path, capsys):
    cfg = _config(tmp_path, "schedule: {cron: '0 2 * * *', catchup: latest}\n")
    assert main(["schedule", cfg, "--print-systemd", "--grace", "120"]) == 0
    out = capsys.readouterr().out
    assert "Type=oneshot" in out and "TimeoutStopSec=150" in out
    assert "OnCalendar=*-*-* 02:00:00 UTC" in out and "Persistent=true" in out
    assert "--trigger schedule --tag 'schedule=0 2 * * *'" in out


def test_schedule_without_a_cron_or_data_trigger_is_refused(tmp_path, capsys):
    assert main(["schedule", _config(tmp_path, "")]) == 2
    assert "nothing to schedule" in capsys.readouterr().err
