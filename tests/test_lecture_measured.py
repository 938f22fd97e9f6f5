"""The measurement scripts behind "The lecture, measured": receptive field and Figure 9.6."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _bench(name: str, folder: str = "bench"):
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_context_module_receptive_field_equals_the_lecture_table():
    rf = _bench("receptive_field")
    rows = rf.measure(size=67, channels=2)
    assert [(r["height"], r["width"]) for r in rows] == [(t, t) for t in rf.TABLE]
    assert list(rf.TABLE) == [3, 5, 9, 17, 33, 65, 67, 67]
    assert all(r["filled"] for r in rows)  # no holes: dilation never skips a pixel here


def test_receptive_field_is_cut_by_a_smaller_input():
    # On 33×33 the centre pixel sees the whole image from layer 5 on: the mask is the input.
    rows = _bench("receptive_field").measure(size=33, channels=1)
    assert [r["height"] for r in rows] == [3, 5, 9, 17, 33, 33, 33, 33]


def test_edge_kernel_counts_are_the_books_figure_9_6():
    eff = _bench("convolution_efficiency")
    c = eff.counts()
    assert c["conv_flops"] == 267_960  # 319 × 280 × 3
    assert c["dense_entries"] == 320 * 280 * 319 * 280 > 8_000_000_000
    assert c["dense_flops"] > 16_000_000_000
    assert round(c["dense_flops"] / c["conv_flops"], -3) == 60_000
    assert c["sparse_entries"] == 178_640


def test_convolution_sparse_and_dense_products_agree():
    eff = _bench("convolution_efficiency")
    image = np.random.default_rng(1).random((6, 7), dtype=np.float32)
    conv = eff.convolve(image)
    assert conv.shape == (6, 6)
    np.testing.assert_allclose(conv, image[:, 1:] - image[:, :-1], atol=1e-6)
    csr = eff.sparse_matrix(6, 7)
    assert csr.nnz == 2 * 6 * 6
    np.testing.assert_allclose((csr @ image.ravel()).reshape(6, 6), conv, atol=1e-6)
    band = np.empty((6, 42), np.float32)
    for r in range(6):
        np.testing.assert_allclose(eff.dense_band(r, 6, 7, band) @ image.ravel(), conv[r])
    result = eff.measure(repeat=2, bands=2)
    assert result["ratios"]["conv"] == 1.0 and result["seconds"]["dense"] > 0


def test_lecture_docs_copies_the_newest_finished_sweep_run(sqlite_uri, tmp_path):
    from mlflow import MlflowClient

    docs = _bench("lecture_docs", "scripts")
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.create_experiment("lenet", artifact_location=str(tmp_path / "art"))
    # The third is a point of the sweep (same tag, its own name), the fourth a failed sweep.
    runs = (("sweep-pooling", "FINISHED", "0.8"), ("sweep-pooling", "FINISHED", "0.9"),
            ("lenet · 0330", "FINISHED", "0.7"), ("sweep-pooling", "FAILED", "0.1"))  # fmt: skip
    for i, (run_name, status, accuracy) in enumerate(runs):
        tags = {docs.SWEEP_TAG: "pooling"}
        run = client.create_run(exp, start_time=1_000 * (i + 1), tags=tags, run_name=run_name)
        run = run.info.run_id
        files = tmp_path / run
        files.mkdir()
        (files / "sweep_table.md").write_text(f"| accuracy |\n| {accuracy} |\n")
        (files / "sweep_points.csv").write_text(f"accuracy\n{accuracy}\n")
        (files / "sweep_train.x.png").write_bytes(b"png " + accuracy.encode())
        client.log_artifacts(run, str(files))
        client.set_terminated(run, status)
    out = tmp_path / "docs"
    out.mkdir()
    assert docs.copy_sweep(client, "pooling", out)
    assert (out / "pooling.md").read_text() == "| accuracy |\n| 0.9 |\n"
    assert (out / "pooling.png").read_bytes() == b"png 0.9"
    assert not docs.copy_sweep(client, "capacity", out)
    assert sorted(p.name for p in out.iterdir()) == ["pooling.csv", "pooling.md", "pooling.png"]


def test_lecture_docs_draws_a_sweep_of_several_knobs_again_in_one_figure(sqlite_uri, tmp_path):
    from convflow.pipelines import sweep, sweep_report
    from mlflow import MlflowClient

    docs = _bench("lecture_docs", "scripts")
    spec = sweep.load(str(REPO / "configs" / "sweeps" / "capacity.yaml"))
    rows = [
        sweep.PointResult(p, f"r{p.index}", {}, {m: 0.5 + p.index / 100 for m in spec.metrics})
        for p in spec.points
    ]
    files = tmp_path / "files"
    sweep_report.write(spec, rows, files)  # a table, the points and one plot per knob
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.create_experiment("capacity", artifact_location=str(tmp_path / "art"))
    run = client.create_run(exp, tags={docs.SWEEP_TAG: "capacity"}, run_name="sweep-capacity")
    client.log_artifacts(run.info.run_id, str(files))
    client.set_terminated(run.info.run_id, "FINISHED")
    out = tmp_path / "docs"
    out.mkdir()
    assert docs.copy_sweep(client, "capacity", out)
    png = (out / "capacity.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert all(png != p.read_bytes() for p in files.glob("sweep_*.png"))  # drawn, not copied
