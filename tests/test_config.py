"""Config loading: each kind of mistake is one line naming key, value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from convflow.pipelines.cli import load_config, main
from convflow.pipelines.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT = str(REPO / "configs" / "fashion_mnist_lenet.yaml")


def write(tmp_path, text: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def error_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_default_config_loads_with_typed_defaults():
    cfg, _ = load_config(DEFAULT, [])
    assert cfg.pipeline.name == "fashion_mnist_lenet"
    assert cfg["ingest"].validation_fraction == 0.1
    assert cfg["ingest"].idx.class_names[0] == "T-shirt/top"
    assert len(cfg.hash) == 64


def test_unknown_key_names_it_and_lists_allowed(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {valdation_fraction: 0.2}\n"))
    assert msg.startswith("ingest.valdation_fraction: unknown key; allowed keys:")
    assert "validation_fraction" in msg


def test_unknown_section(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningets: {}\n"))
    assert msg.startswith("ingets: unknown section; allowed sections: pipeline, ingest")


def test_wrong_type(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {seed: abc}\n"))
    assert msg == "ingest.seed: 'abc' is not an int"


def test_bool_is_not_an_int(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {shard_size: true}\n"))
    assert msg == "ingest.shard_size: True is not an int"


def test_value_out_of_range(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {validation_fraction: 1.5}\n"))
    assert msg == "ingest.validation_fraction: 1.5 is not allowed; expected >= 0.0 and <= 0.9"


def test_value_not_a_choice(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {source: csv}\n"))
    assert msg == (
        "ingest.source: 'csv' is not allowed; expected one of 'idx', 'tfds', 'folder', "
        "'scenes', 'coco', 'voc_detection', 'yolo_txt', 'mask_folder', 'voc_segmentation', "
        "'tfds_segmentation'"
    )


def test_nested_section_checked(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {idx: {class_names: [1, 2]}}\n"))
    assert msg == "ingest.idx.class_names[0]: 1 is not a string"


def test_cross_field_rule(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x}\ningest: {source: folder}\n"))
    assert msg == "ingest: source 'folder' needs ingest.folder: the data directory"


def test_missing_required_key(tmp_path):
    msg = error_of(write(tmp_path, "ingest: {}\n"))
    assert msg.startswith("pipeline.name: missing;")


def test_missing_file():
    msg = error_of("configs/nope.yaml")
    assert msg == "config file not found: 'configs/nope.yaml'; configs live in configs/"


def test_invalid_yaml(tmp_path):
    msg = error_of(write(tmp_path, "pipeline: {name: x\n"))
    assert "is not valid YAML" in msg


def test_set_overrides_are_typed():
    cfg, _ = load_config(
        DEFAULT, ["ingest.seed=7", "ingest.max_examples=100", "pipeline.name=exp2"]
    )
    assert cfg["ingest"].seed == 7 and cfg["ingest"].max_examples == 100
    assert cfg.pipeline.name == "exp2"
    assert cfg.pipeline.model_name == "fashion_mnist_lenet"  # set in the file, kept


def test_set_errors_name_the_key():
    assert error_of(DEFAULT, ["ingest.seed=-1"]) == "ingest.seed: -1 is not allowed; expected >= 0"
    assert error_of(DEFAULT, ["ingest"]) == "--set 'ingest': expected section.key=value"


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    code = main(["validate", DEFAULT, "--set", "ingest.validation_fraction=2"])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err == "error: ingest.validation_fraction: 2.0 is not allowed; expected >= 0.0 and <= 0.9\n"
    )


def test_cli_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "convflow.pipelines.cli", "run", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: config file not found:")


def test_validate_prints_the_resolved_config(capsys):
    assert main(["validate", DEFAULT, "--set", "ingest.seed=3"]) == 0
    out = capsys.readouterr().out
    assert "seed: 3" in out and "model_name: fashion_mnist_lenet" in out


def test_exponent_floats_and_empty_sections_take_overrides(tmp_path):
    path = write(tmp_path, "pipeline: {name: x}\ningest:\n")
    cfg, _ = load_config(path, ["ingest.validation_fraction=5e-2", "ingest.seed=4"])
    assert cfg["ingest"].validation_fraction == 0.05  # YAML 1.1 reads 5e-2 as a string
    assert cfg["ingest"].seed == 4


def test_unwritable_artifact_root_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["run", DEFAULT, "--artifact-root", str(blocker / "store"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
pipeline: {name: *i}
"""


def _hostile(tmp_path, case: str) -> tuple[str, str]:
    """(config path, what its one-line error must say) for each kind of hostile file."""
    if case == "latin1":
        path = tmp_path / "latin1.yaml"
        path.write_bytes("pipeline:\n  name: caf\xe9\n".encode("latin-1"))
        return str(path), "line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    if case == "directory":
        return str(tmp_path), "is a directory; give a YAML file"
    if case == "duplicate":
        path = write(tmp_path, "pipeline:\n  name: a\ntrain:\n  epochs: 1\n  epochs: 50\n")
        return path, "line 5: duplicate key 'epochs' (first on line 4); keep one of them"
    if case == "huge":
        path = tmp_path / "huge.yaml"
        path.write_text("pipeline: {name: x}\n" + "# padding\n" * 200_000)
        return str(path), "bytes, above the 1,048,576-byte limit for a config"
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    return str(path), "anchors and aliases expand to more than 100,000 values"


HOSTILE = ("latin1", "directory", "duplicate", "huge", "laughs")


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_config_is_one_line_within_a_second(tmp_path, case):
    import time

    path, expected = _hostile(tmp_path, case)
    t0 = time.perf_counter()
    msg = error_of(path)
    assert time.perf_counter() - t0 < 1.0
    assert expected in msg and "\n" not in msg
    assert msg.startswith(path)


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_config_cli_exits_2_with_one_line(tmp_path, case):
    path, expected = _hostile(tmp_path, case)
    proc = subprocess.run(
        [sys.executable, "-m", "convflow.pipelines.cli", "validate", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]


def test_aliases_that_do_not_explode_still_work(tmp_path):
    path = write(
        tmp_path,
        "pipeline: {name: x}\ningest: {seed: &s 3}\ntrain: {seed: *s}\n",
    )
    cfg, _ = load_config(path, [])
    assert cfg["ingest"].seed == 3 and cfg["train"].seed == 3


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_resolves(path):
    # load_config checks each key, value and the chosen model's model_kwargs against its builder,
    # so an edit to a shipped config that a run would refuse fails here, not an hour into a run.
    cfg, _ = load_config(str(path), [])
    assert cfg.pipeline.name == path.stem
