"""One worker of a multi-worker training: ``python -m convflow.components.train.worker JOB I``.

Launched by :mod:`convflow.components.train.multiworker` with ``TF_CONFIG`` set. Worker 0 is
the chief: it checkpoints into the step's ``ckpt/``, logs each epoch to ``epochs.jsonl`` and
saves the final model; the others do the same work into their own scratch, which they delete.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

from convflow.components.base import ComponentError, Context
from convflow.components.train import multiworker, runtime
from convflow.components.train.spec import MULTI_WORKER


def _epoch_logger(path: Path):
    """Appends one JSON line per finished epoch (the chief's checkpoint is on disk by then)."""

    def on_epoch(epoch: int, logs: dict) -> None:
        with open(path, "a") as f:
            f.write(json.dumps({"epoch": epoch, "logs": logs}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    return on_epoch


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(job_path: Path, index: int) -> int:
    """Trains this worker's share; returns the exit code (0, or 3 for a user error)."""
    # The strategy first: it must exist before this process runs any other TF op.
    strategy = runtime.make_strategy(MULTI_WORKER)
    from convflow.components.train import executor

    job = pickle.loads(job_path.read_bytes())
    run_dir = job_path.parent
    ctx = Context(
        params=job["params"],
        inputs={"examples": job["examples"]},
        outputs={},
        work_dir=Path(job["work_dir"]),
        pipeline={"task": job["task"]} if job["task"] else {},
        show_progress=False,
    )
    chief = strategy.cluster_resolver.task_id == 0
    save_dir = run_dir / f"scratch-{index}"
    try:
        plan = executor.plan_run(ctx)
        if chief:
            save_dir = plan.ckpt_dir
        runtime.seed_everything(plan.params.seed, plan.params.deterministic)
        on_epoch = _epoch_logger(run_dir / multiworker.EPOCHS_FILE) if chief else None
        fitted = executor.fit_in_scope(ctx, plan, strategy, job["precision"], save_dir, on_epoch)
        # Every worker saves (reads of synced variables may be collective); only the chief's
        # file is kept.
        final = run_dir / multiworker.FINAL_MODEL if chief else save_dir / "final.keras"
        tmp = final.with_name(f"tmp-{final.name}")
        fitted.model.save(tmp)
        os.replace(tmp, final)
        if chief:
            checkpoint = fitted.checkpoint
            result = {
                "history": checkpoint.history,
                "stopped": checkpoint.stopped,
                "best_epoch": checkpoint.best_epoch,
                "fit_seconds": fitted.fit_seconds,
                "restored": fitted.restored,
            }
            _write_atomic(run_dir / multiworker.RESULT_FILE, json.dumps(result))
    except ComponentError as e:
        (run_dir / multiworker.ERROR_FILE.format(index=index)).write_text(str(e))
        return 3
    finally:
        if not chief:
            shutil.rmtree(save_dir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    job, index = argv if argv is not None else sys.argv[1:]
    return run(Path(job), int(index))


if __name__ == "__main__":
    sys.exit(main())
