"""The console script's quick exit still finishes what Python's shutdown would."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(body: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )


def test_output_atexit_handlers_and_threads_are_finished_before_the_exit(tmp_path):
    done = _run(
        """
        import atexit, sys, threading, time
        from pathlib import Path
        from convflow.pipelines.cli import entry

        atexit.register(lambda: Path("atexit.txt").write_text("ran"))
        def late():
            time.sleep(0.5)
            Path("thread.txt").write_text("joined")
        threading.Thread(target=late).start()
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(1)  # kept, never shut down: its worker waits for work
        pool.submit(print, "pool", file=sys.stderr)
        sys.stdout.write("x" * 100_000)  # still in the buffer when the command returns
        sys.argv = ["convflow", "models"]
        entry()
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("x" * 100_000)
    assert "lenet5" in done.stdout  # the command's own table, flushed after it
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "thread.txt").read_text() == "joined"
    assert "pool" in done.stderr  # and its idle worker did not keep the process alive


def test_the_command_exit_status_is_kept(tmp_path):
    (tmp_path / "bad.yaml").write_text("train: {epochs: -1}\n")
    done = _run(
        """
        import sys
        from convflow.pipelines.cli import entry
        sys.argv = ["convflow", "validate", "bad.yaml"]
        entry()
        """,
        tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
