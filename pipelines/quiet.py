"""A terminal that only says what matters: known start-up noise is dropped from stderr.

TensorFlow 2.21 prints its oneDNN notice through absl *before* absl's logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot silence it; Beam logs an ``apitools`` warning on import; MLflow
logs INFO lines on every store it opens. These go to file descriptor 2 from C++, Python and
child processes alike, so the filter sits on the descriptor: a pipe whose reader thread drops
lines that match :data:`NOISE` and forwards everything else (real warnings, tracebacks,
progress bars) unchanged. ``convflow run --verbose`` does not install it.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading

NOISE = tuple(
    re.compile(p)
    for p in (
        # absl/glog lines: INFO from anywhere, WARNING/ERROR only from TF's start-up files.
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
        r"^I\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ",
        r"^[WE]\d{4} [\d:.]+\s+\d+ (cpu_feature_guard|cuda_dnn|cuda_fft|cuda_blas|port)\.cc:",
        r"^WARNING:root:apitools not found",
        r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow[\w.]*: ",
        # MLflow's own registration chatter: the register step prints one line of its own.
        r"^Successfully registered model '",
        r"^Created version '\d+' of model '",
    )
)
_IDLE_S = 0.2  # a partial line (a progress bar) waiting this long is passed through


def is_noise(line: str) -> bool:
    """Whether one stderr line is known start-up noise."""
    return any(p.search(line) for p in NOISE)


class _Filter:
    def __init__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self.reader = os.fdopen(read_fd, "rb", buffering=0)
        self.thread = threading.Thread(target=self._pump, name="stderr-filter", daemon=True)
        self.thread.start()

    def _emit(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if not is_noise(text):
            os.write(self.saved, data)

    def _pump(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self.reader], [], [], _IDLE_S)
            if not ready:
                if pending:  # a progress bar or prompt without an end of line yet
                    os.write(self.saved, pending)
                    pending = b""
                continue
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            # Lines end at \n; progress bars redraw with \r. Keep the ends on the pieces.
            pieces = re.split(rb"(?<=[\r\n])", pending)
            pending = pieces.pop()
            for piece in pieces:
                self._emit(piece)
        if pending:
            self._emit(pending)

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # closes the pipe's write end: the reader sees EOF
        self.thread.join(timeout=5)
        self.reader.close()
        os.close(self.saved)


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True):
    """Drops :data:`NOISE` lines from fd 2 for the duration; a no-op when not enabled."""
    if not enabled:
        yield
        return
    f = _Filter()
    try:
        yield
    finally:
        f.close()
