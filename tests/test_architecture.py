"""Declaration apart from execution: light specs, config checks without ML, typed examples,
the transform table and the task seam's codec and geometry."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from convflow.components import transforms
from convflow.components.examples import codec
from convflow.components.targets import TargetFeature, Window
from convflow.components.tasks.classification import Classification
from convflow.pipelines.cli import main

HEAVY = ("tensorflow", "keras", "apache_beam")
CONFIG = Path(__file__).parents[1] / "configs" / "fashion_mnist_lenet.yaml"


def _validate(capsys, *overrides: str) -> tuple[int, str]:
    sets = [a for o in overrides for a in ("--set", o)]
    code = main(["validate", str(CONFIG), *sets])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("override", "telltale"),
    [
        ("train.model=nope", "error: train.model='nope': unknown model"),
        ("train.model=unet", "error: train.model='unet': is a segmentation model; this pipeline"),
        (
            "train.model_kwargs={depth: 3}",
            "error: train.model='lenet5': model_kwargs.depth is not an argument of lenet5",
        ),
        (
            "preprocess.steps=[standardize, gcn]",
            "error: preprocess.steps=['standardize', 'gcn']: 'standardize' must be last",
        ),
        ("preprocess.lcn.kernel_size=4", "error: preprocess.lcn.kernel_size=4 must be odd"),
    ],
)
def test_validate_reports_each_mistake_in_one_line_with_exit_2(capsys, override, telltale):
    code, err = _validate(capsys, override)
    assert code == 2
    assert "\n" not in err and err.startswith(telltale), err


def test_validate_and_specs_never_import_tensorflow_keras_or_beam(tmp_path):
    script = (
        "import sys\n"
        "from convflow.pipelines.cli import main\n"
        f"code = main(['validate', {str(CONFIG)!r}])\n"
        "import convflow.components.preprocess, convflow.components.train\n"
        "import convflow.components.evaluate, convflow.components.register\n"
        "from convflow.models import catalog; catalog.rows()\n"
        f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "0 []"


def test_models_lists_the_catalog_without_building(capsys):
    assert main(["models", "--kind", "segmentation"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "kind", "params", "inputs", "paper"]
    names = {line.split()[0] for line in out[1:]}
    assert {"unet", "segnet", "fcn8s"} <= names and "lenet5" not in names


def test_the_catalog_matches_the_live_registry():
    # The catalog is written once by `python -m convflow.models.catalog`; a model added or
    # changed without regenerating it must fail here, not in a user's `convflow validate`.
    import inspect

    from convflow.models import catalog, zoo

    rows = {r["name"]: r for r in catalog.rows()}
    assert sorted(rows) == zoo.list_models()
    for name in zoo.list_models():
        spec, row = zoo.get_spec(name), rows[name]
        params = inspect.signature(spec.builder).parameters
        assert row["kind"] == spec.kind and row["family"] == spec.family, name
        assert row["first_conv"] == spec.first_conv and row["classifier"] == spec.classifier
        assert row["arguments"] == sorted(
            n for n, p in params.items() if p.kind is not p.VAR_KEYWORD
        ), name
    assert rows["lenet5"]["params"] == zoo.build("lenet5").count_params()


@pytest.mark.slow
def test_a_fully_cached_run_never_imports_tensorflow_keras_or_beam(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(
        f"pipeline: {{name: noop, artifact_root: {tmp_path / 'store'}}}\n"
        "ingest: {max_examples: 200}\n"
        "train: {epochs: 1, batch_size: 64}\n"
    )
    script = (
        "import sys\n"
        "from convflow.pipelines.cli import main\n"
        f"code = main(['run', {str(cfg)!r}, '--quiet', "
        f"'--tracking-uri', 'sqlite:///{tmp_path / 'mlflow.db'}'])\n"
        f"print('heavy', code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
        for _ in range(2)
    ]
    assert runs[0].stdout.count("| ran ") == 6, runs[0].stdout + runs[0].stderr[-3000:]
    assert runs[1].stdout.count("| cached ") == 6, runs[1].stdout + runs[1].stderr[-3000:]
    assert "heavy 0 []" in runs[1].stdout


def test_raw_examples_cannot_feed_train():
    from convflow.components.ingest import Params as IngestParams
    from convflow.components.ingest import ingest
    from convflow.components.train import TrainParams, train
    from convflow.pipelines.dag import Pipeline, PipelineError

    p = Pipeline("miswired")
    raw = p.add(ingest, IngestParams())
    with pytest.raises(PipelineError, match="wants TransformedExamples, got RawExamples"):
        p.add(train, TrainParams(), examples=raw["examples"])


def test_transform_table_rows_resolve_to_contrast_functions_and_layers():
    from convflow.models.layers import contrast

    assert transforms.INTERPOLATIONS == contrast.INTERPOLATIONS
    for name, row in transforms.TRANSFORMS.items():
        assert callable(getattr(contrast, row.function)), name
        assert isinstance(getattr(contrast, row.layer), type), name
    assert transforms.STEPS == ("crop", "resize", "gcn", "lcn", "standardize")


def test_windows_compose_crop_then_resize():
    crop = transforms.window("crop", {}, 30, 50)
    assert (crop.y0, crop.x0, crop.height, crop.width) == (0, 10, 30, 30)
    both = transforms.window_for(["crop", "resize", "gcn"], {"resize": {"size": 15}}, 30, 50)
    assert both == Window(30, 50, 0, 10, 30, 30, 15, 15)
    assert transforms.window_for(["gcn"], {}, 7, 9) == Window.identity(7, 9)


class _Boxes(Classification):
    """A test task whose records carry a mask and a variable-length box list."""

    name = "test_boxes"
    target_features = (
        TargetFeature("mask", "uint8", ("H", "W")),
        TargetFeature("boxes", "float32", (None, 4)),
        TargetFeature("classes", "int64", (None,)),
    )

    def check_target(self, target, image_shape, num_classes):
        return None if len(target["boxes"]) == len(target["classes"]) else "boxes != classes"


def test_a_task_adds_its_own_target_features_to_records():
    task = _Boxes()
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4, 1)
    boxes = np.empty(2, object)
    boxes[:] = [np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), np.zeros((0, 4), np.float32)]
    classes = np.empty(2, object)
    classes[:] = [np.array([3]), np.zeros(0, np.int64)]
    targets = {"mask": images[..., 0] % 3, "boxes": boxes, "classes": classes}
    records = codec.encode_batch(images, targets, task.target_features)
    for i, record in enumerate(records):
        image, target = codec.parse_record(record, "uint8", 1, 10, task)
        np.testing.assert_array_equal(image, images[i])
        np.testing.assert_array_equal(target["mask"], targets["mask"][i])
        np.testing.assert_allclose(target["boxes"], boxes[i])
        np.testing.assert_array_equal(target["classes"], classes[i])
    with pytest.raises(codec.RejectedRecord, match="missing feature 'mask'"):
        codec.parse_record(codec.encode(images[0], 1), "uint8", 1, 10, task)


def test_examples_info_round_trips_through_artifact_properties():
    from convflow.components.examples import ExamplesInfo, TransformInfo

    info = ExamplesInfo(
        splits={"train": {"count": 2, "files": ["train-00000-of-00001.tfrecord"]}},
        dtype="float32",
        image_shape=(28, 28, 1),
        channels=1,
        class_names=("a", "b"),
        class_histogram={"train": [1, 1]},
        transform=TransformInfo(("gcn",), "uint8", 1, {"gcn": {"scale": 1.0}}, 0, (-2.0, 3.0)),
    )
    props = json.loads(json.dumps(info.to_properties()))
    assert ExamplesInfo.from_properties(props) == info
    assert info.artifact_type == "TransformedExamples" and info.num_classes == 2


MAX_FUNCTION_LINES = 60  # STYLE.md: functions stay short
PACKAGES = ("pipelines", "components", "models")


def _long_functions(root: Path) -> list[str]:
    """``path:line name (N lines)`` for every function over MAX_FUNCTION_LINES, docstring
    included; a model builder in models/ (CapWords, like keras.applications' ResNet50) is
    exempt: it reads top to bottom as the paper's table."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                lines = node.end_lineno - node.lineno + 1
                builder = package == "models" and node.name[:1].isupper()
                if lines > MAX_FUNCTION_LINES and not builder:
                    where = path.relative_to(root)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return sorted(found)


def test_no_function_outside_the_model_builders_is_over_60_lines():
    assert _long_functions(CONFIG.parents[1]) == []


def test_the_length_scan_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "components").mkdir()
    (tmp_path / "pipelines" / "long.py").write_text(f"def step():\n{body}\n")
    (tmp_path / "models" / "net.py").write_text(f"def ResNet():\n{body}\n\ndef helper():\n{body}\n")
    assert _long_functions(tmp_path) == [
        f"models/net.py:{MAX_FUNCTION_LINES + 3} helper ({MAX_FUNCTION_LINES + 1} lines)",
        f"pipelines/long.py:1 step ({MAX_FUNCTION_LINES + 1} lines)",
    ]
