"""A fully cached ``convflow run`` next to a bare ``python -c "import tensorflow"``.

A no-op run computes every step's cache key, confirms the published artifacts, records the
MLflow runs and prints the summary, and should never import TensorFlow, Keras or Beam (the
runner loads executors only to run them). Both commands run as fresh processes, alternating,
``--repeat`` times each; the medians and their ratio are printed (target: ≤ 0.5), in wall
seconds and in CPU seconds (user + sys of the child: steadier than wall time on a machine that
other jobs share). A third command, importing MLflow's sqlite tracking and registry stores and
nothing else, shows the floor a run that records itself in MLflow cannot go below.

The run and the floor leave as the console script does (``cli.entry``: threads, ``atexit``
handlers and stdio are finished, then ``os._exit`` skips freeing ~2,500 modules, ~0.7 s of CPU;
see pipelines/fastexit.py); ``import tensorflow`` leaves as ``python -c`` does.

The children run as an installed ``convflow`` does: Python writes and reuses bytecode
(``PYTHONDONTWRITEBYTECODE`` is dropped from their environment), so the run does not pay for
compiling the project's modules every time.

The first (warming) run fills the store and is not measured; with the default config it
trains the real pipeline once (minutes on a laptop). ``--set`` shrinks it for a quick look,
e.g. ``--set ingest.max_examples=500 --set train.epochs=1``: the cached run's cost does not
depend on the data size.

    python bench/noop.py [--config configs/fashion_mnist_lenet.yaml] [--repeat 5]
                         [--root DIR] [--set SECTION.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The console script's body (cli.entry), plus a last line naming the heavy modules imported.
CLI = (
    "import sys\n"
    "from convflow.pipelines.cli import main\n"
    "from convflow.pipelines.fastexit import exit_now\n"
    "code = main(sys.argv[1:])\n"
    "heavy = [m for m in ('tensorflow', 'keras', 'apache_beam') if m in sys.modules]\n"
    "print('heavy modules:', heavy, file=sys.stderr)\n"
    "exit_now(code)\n"
)


# What a cached run cannot avoid: MLflow (its package imports pandas, alembic, sqlalchemy...).
# Left the way the console script leaves (pipelines/fastexit.py), so the two compare alike.
FLOOR = (
    "import mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store\n"
    "from convflow.pipelines.fastexit import exit_now\n"
    "exit_now(0)\n"
)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def run_argv(args, root: Path) -> list[str]:
    sets = [a for s in args.set for a in ("--set", s)]
    return [
        sys.executable, "-c", CLI, "run", str(args.config), *sets,
        "--artifact-root", str(root / "store"),
        "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--quiet",
    ]  # fmt: skip


def check(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        sys.exit(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def measure(argv: list[str], root: Path, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) of each command, alternating, ``repeat`` times; checks each run is a no-op."""
    commands = {
        "cached run": argv,
        "import tensorflow": [sys.executable, "-c", "import tensorflow"],
        "import MLflow stores": [sys.executable, "-c", FLOOR],
    }
    for what, command in commands.items():  # warm the page cache and the bytecode caches
        check(timed(command)[2], what)
    times: dict[str, list[tuple[float, float]]] = {what: [] for what in commands}
    for _ in range(repeat):
        for what, command in commands.items():
            wall, cpu, done = timed(command)
            check(done, what)
            if what == "cached run":
                ran, heavy = done.stdout.count("| ran "), done.stderr.strip().splitlines()[-1]
                if ran or "[]" not in heavy:
                    sys.exit(f"not a no-op run: {ran} steps ran; {heavy}\n{done.stdout}")
            times[what].append((wall, cpu))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "fashion_mnist_lenet.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--root", type=Path, help="store + sqlite (default: a temporary folder)")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="convflow-noop-"))
    argv = run_argv(args, root)

    wall, _, done = timed(argv)
    check(done, "the warming run")
    print(f"warming run: {wall:.1f} s (store {root / 'store'})", file=sys.stderr)
    load_before = os.getloadavg()[0]
    times = measure(argv, root, args.repeat)
    med = {
        what: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for what, t in times.items()
    }
    print(f"1-min load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    for what, (wall, cpu) in med.items():
        runs = ", ".join(f"{w:.2f}" for w, _ in times[what])
        print(f"{what:22s} median {wall:6.2f} s wall, {cpu:6.2f} s CPU  (wall: {runs})")
    (run_w, run_c), (tf_w, tf_c) = med["cached run"], med["import tensorflow"]
    floor_w, floor_c = med["import MLflow stores"]
    print(f"ratio cached run / import tensorflow: {run_w / tf_w:.2f} wall, {run_c / tf_c:.2f} CPU")
    print(
        f"  (floor: importing MLflow's stores alone is {floor_w / tf_w:.2f} wall, "
        f"{floor_c / tf_c:.2f} CPU of import tensorflow; target <= 0.5)"
    )


if __name__ == "__main__":
    main()
