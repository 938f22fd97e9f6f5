"""A two-step pipeline whose first step waits for the test between metric logs.

python restartflow.py ROOT URI MARKER GO: step ``slow`` logs m=1 (step 0), touches MARKER,
waits for GO to exist, logs m=2 (step 1) and m=3 (step 2); step ``after`` then runs. The
test restarts (or stops) the tracking server between MARKER and GO.
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from convflow.components.base import EXAMPLES, MODEL, Context, component, param
from convflow.pipelines import runner
from convflow.pipelines.config import resolve
from convflow.pipelines.dag import Pipeline


@dataclass(frozen=True)
class Params:
    marker: str = param("")
    go: str = param("")


@component(name="slow", inputs={}, outputs={"examples": EXAMPLES}, params=Params)
def slow(ctx: Context) -> None:
    ctx.log_metrics({"m": 1.0}, step=0)
    Path(ctx.params.marker).touch()
    deadline = time.monotonic() + 600
    while not Path(ctx.params.go).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    ctx.log_metrics({"m": 2.0}, step=1)
    ctx.log_metrics({"m": 3.0}, step=2)
    (ctx.outputs["examples"].path / "data.txt").write_text("slow")


@component(name="after", inputs={"examples": EXAMPLES}, outputs={"model": MODEL}, params=Params)
def after(ctx: Context) -> None:
    ctx.log_metrics({"done": 1.0})
    (ctx.outputs["model"].path / "data.txt").write_text("after")


if __name__ == "__main__":
    root, uri, marker, go = sys.argv[1:5]
    data = {
        "pipeline": {"name": "restart", "artifact_root": root},
        "slow": {"marker": marker, "go": go},
        "after": {},
    }
    cfg = resolve(data, {"slow": Params, "after": Params})
    p = Pipeline("restart")
    a = p.add(slow, cfg["slow"])
    p.add(after, cfg["after"], examples=a["examples"])
    try:
        results, run_id = runner.run(p, cfg, runner.RunOptions(tracking_uri=uri, force=True))
    except Exception as e:  # the CLI's one line, without importing its config machinery
        print(f"error: lost the MLflow tracking store mid-run ({str(e).splitlines()[0][:200]})")
        sys.exit(1)
    print(f"RUN {run_id}")
    sys.exit(1 if any(r.status == runner.FAILED for r in results) else 0)
