"""Copies the figures of "The lecture, measured" (README) into docs/lecture/.

For every sweep in ``configs/sweeps/`` (or the names given) it takes the newest FINISHED
``sweep-NAME`` run from the MLflow store the sweeps ran in and copies its comparison table
(``sweep_table.md`` -> ``docs/lecture/NAME.md``), its points (``NAME.csv``) and its first
knob plot (``NAME.png``); a sweep of several knobs (capacity), or any with ``--redraw``, gets
``NAME.png`` drawn again from its points and ``configs/sweeps/NAME.yaml`` by the sweep
report's own code, every knob in one figure. Then it runs the two measurement scripts,
``bench/receptive_field.py`` and ``bench/convolution_efficiency.py``, writing their plot and
printed table next to them. Nothing is drawn by hand: re-run the sweeps and this script to
regenerate every figure.

    convflow sweep configs/sweeps/pooling.yaml          # ... one per claim
    python scripts/lecture_docs.py [--tracking-uri sqlite:///convflow_runs/mlflow.db]
                                   [--out docs/lecture] [--sweeps pooling ...] [--no-bench]
                                   [--redraw]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
SWEEP_TAG = "convflow.sweep"  # convflow.pipelines.sweep.SWEEP_TAG
BENCHES = ("receptive_field", "convolution_efficiency")


def newest_sweep_run(client: MlflowClient, name: str):
    """The newest FINISHED sweep run named ``name`` in any experiment, or None."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(
        experiments,
        # The points' runs carry the sweep's tag too; only the sweep run is named sweep-NAME.
        filter_string=(
            f"tags.`{SWEEP_TAG}` = '{name}' and attributes.run_name = 'sweep-{name}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def redraw(name: str, points_csv: Path, png: Path) -> None:
    """Draws every knob of sweep ``name`` in one figure from its ``sweep_points.csv``."""
    from convflow.pipelines import sweep, sweep_report

    spec = sweep.load(str(ROOT / "configs" / "sweeps" / f"{name}.yaml"))
    sweep_report.overview_plot(spec, sweep_report.rows_from_csv(spec, points_csv), png)


def copy_sweep(client: MlflowClient, name: str, out: Path, again: bool = False) -> bool:
    """Copies one sweep's table, points and first plot (drawn again, all knobs, when it has
    several or ``again``); False when it has no finished run."""
    run = newest_sweep_run(client, name)
    if run is None:
        print(f"{name}: no finished sweep run; run: convflow sweep configs/sweeps/{name}.yaml")
        return False
    with tempfile.TemporaryDirectory() as tmp:
        got = Path(client.download_artifacts(run.info.run_id, "", tmp))
        plots = sorted(got.glob("sweep_*.png"))
        shutil.copyfile(got / "sweep_table.md", out / f"{name}.md")
        shutil.copyfile(got / "sweep_points.csv", out / f"{name}.csv")
        if again or len(plots) > 1:
            redraw(name, out / f"{name}.csv", out / f"{name}.png")
        elif plots:
            shutil.copyfile(plots[0], out / f"{name}.png")
    print(f"{name}: run {run.info.run_id} -> {out / name}.{{md,csv,png}}")
    return True


def run_bench(name: str, out: Path) -> None:
    """Runs bench/NAME.py with --plot; its printed table goes to NAME.txt."""
    plot = os.path.relpath(out / f"{name}.png", ROOT)  # the printed table names it
    argv = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--plot", plot]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"error: bench/{name}.py failed ({done.returncode}):\n{done.stderr[-2000:]}")
    (out / f"{name}.txt").write_text(done.stdout)
    print(f"{name}: {out / name}.{{txt,png}}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", default="sqlite:///convflow_runs/mlflow.db")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "lecture")
    ap.add_argument("--sweeps", nargs="*", help="sweep names (default: configs/sweeps/*.yaml)")
    ap.add_argument("--no-bench", action="store_true", help="copy the sweeps only")
    ap.add_argument(
        "--redraw", action="store_true", help="draw every sweep's plot again from its points"
    )
    args = ap.parse_args()
    names = args.sweeps or sorted(p.stem for p in (ROOT / "configs" / "sweeps").glob("*.yaml"))
    args.out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=args.tracking_uri)
    for name in names:
        copy_sweep(client, name, args.out, again=args.redraw)
    if not args.no_bench:
        for name in BENCHES:
            run_bench(name, args.out)


if __name__ == "__main__":
    main()
