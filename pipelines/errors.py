"""Failures of the machine rather than of the code: said in one line, with the path."""

from __future__ import annotations

import errno
import os
import re

# A full disk, a read-only or over-quota store, a failing device.
MACHINE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EFBIG}
# The same causes as TensorFlow and other C++ writers report them (not as OSError).
MACHINE_MESSAGES = tuple(os.strerror(n) for n in sorted(MACHINE_ERRNOS))
_PATH = re.compile(r"(/[^\s;:'\",]+)")


def environment_error(error: BaseException) -> str | None:
    """``"cause (path)"`` when ``error`` (or what caused it) is a machine failure, else None."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in MACHINE_ERRNOS:
            path = seen.filename or _first_path(str(seen))
            return f"{os.strerror(seen.errno)} ({path or 'path not reported'})"
        text = str(seen)
        for message in MACHINE_MESSAGES:
            if message in text:
                return f"{message} ({_first_path(text) or 'path not reported'})"
        seen = seen.__cause__ or seen.__context__
    return None


def _first_path(text: str) -> str | None:
    match = _PATH.search(text)
    return match.group(1) if match else None


def exit_code_for_os_error(error: OSError, usage: int, failed: int) -> int:
    """A machine failure is a failed run (1); a bad path from the user is a usage error (2)."""
    return failed if error.errno in MACHINE_ERRNOS else usage
