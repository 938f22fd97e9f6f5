"""A fully cached ``convflow run`` next to a bare ``python -c "import tensorflow"``.

A no-op run computes every step's cache key, confirms the published artifacts, records the
MLflow runs and prints the summary, and should never import TensorFlow, Keras or Beam (the
runner loads executors only to run them). Both commands run as fresh processes, alternating,
``--repeat`` times each; the medians and their ratio are printed (target: ≤ 0.5).

The first (warming) run fills the store and is not measured; with the default config it
trains the real pipeline once (minutes on a laptop). ``--set`` shrinks it for a quick look,
e.g. ``--set ingest.max_examples=500 --set train.epochs=1``: the cached run's cost does not
depend on the data size.

    python bench/noop.py [--config configs/fashion_mnist_lenet.yaml] [--repeat 5]
                         [--root DIR] [--set SECTION.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The console script's body, plus a last line naming the heavy modules the run imported.
CLI = (
    "import sys\n"
    "from convflow.pipelines.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = [m for m in ('tensorflow', 'keras', 'apache_beam') if m in sys.modules]\n"
    "print('heavy modules:', heavy, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t0, done


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "fashion_mnist_lenet.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--root", type=Path, help="store + sqlite (default: a temporary folder)")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="convflow-noop-"))
    argv = run_argv(args, root)

    seconds, done = timed(argv)
    check(done, "the warming run")
    print(f"warming run: {seconds:.1f} s (store {root / 'store'})", file=sys.stderr)

    cached, bare = [], []
    for _ in range(args.repeat):
        seconds, done = timed(argv)
        check(done, "a cached run")
        steps = done.stdout.count("| cached ")
        ran = done.stdout.count("| ran ")
        heavy = done.stderr.strip().splitlines()[-1]
        if ran or "[]" not in heavy:
            sys.exit(f"not a no-op run: {ran} steps ran; {heavy}\n{done.stdout}")
        cached.append(seconds)
        seconds, done = timed([sys.executable, "-c", "import tensorflow"])
        check(done, "import tensorflow")
        bare.append(seconds)

    run_s, tf_s = statistics.median(cached), statistics.median(bare)
    print(f"cached run ({steps} steps cached, {heavy}): median {run_s:.2f} s of {cached!r}")
    print(f"python -c 'import tensorflow':               median {tf_s:.2f} s of {bare!r}")
    print(f"ratio cached run / import tensorflow: {run_s / tf_s:.2f} (target <= 0.5)")


if __name__ == "__main__":
    main()
