"""Ends the ``convflow`` process without Python's module teardown.

After a command's work is done, Python's interpreter shutdown frees the ~2,500 modules a run
imports (MLflow alone pulls in SQLAlchemy, pandas, pyarrow, FastAPI...): about 0.7 s of CPU on
this project's machine, about a quarter of a fully cached run (``bench/noop.py``), for memory
the kernel takes back anyway. :func:`exit_now` does what shutdown does that matters (threading's
exit hooks, which stop idle executor workers, and waiting for non-daemon threads; the ``atexit``
handlers: logging, MLflow's, ``weakref.finalize``; flushing stdout and stderr) and then leaves
with ``os._exit``. Only the console script uses it; code that calls
:func:`convflow.pipelines.cli.main` in-process keeps the normal shutdown.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Leaves the process with ``code`` once threads, ``atexit`` handlers and stdio are done.

    Args:
        code: the exit status (0–255).
    """
    # What Py_Finalize does first, in its order: threading's own exit hooks (they wake the
    # idle workers of executors nobody shut down), then every non-daemon thread is joined;
    # then the atexit handlers (each runs once).
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader left, or the stream was closed
            code = code or 120  # what Python itself exits with when this flush fails
    os._exit(code)
