"""Runs the fake pipeline in a subprocess: python -m fakeflow.main ROOT URI LOG [HANG_MARKER]."""

import sys

from convflow.pipelines import runner

from fakeflow.pipeline import build

if __name__ == "__main__":
    root, uri, log = sys.argv[1:4]
    marker = sys.argv[4] if len(sys.argv) > 4 else ""
    pipeline, cfg = build(root, log, hang_marker=marker)
    results, _ = runner.run(pipeline, cfg, runner.RunOptions(tracking_uri=uri, show_progress=False))
    sys.exit(1 if any(r.status == runner.FAILED for r in results) else 0)
