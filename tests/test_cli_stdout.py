"""A reader that leaves early (``convflow models | head``) ends the command quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from convflow.pipelines import cli

CONFIG = Path(__file__).parents[1] / "configs" / "fashion_mnist_lenet.yaml"


def _into_closed_pipe(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs ``convflow ARGV`` with stdout on a real pipe whose reader is already gone."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # every write the command makes now fails with EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "convflow.pipelines.cli", *argv],
            stdout=write_fd,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            timeout=300,
        )
    finally:
        os.close(write_fd)


COMMANDS = {
    "models": lambda tmp: ["models"],
    "version": lambda tmp: ["--version"],
    "validate": lambda tmp: ["validate", str(CONFIG)],
    "run-explain": lambda tmp: [
        "run", str(CONFIG), "--explain",
        "--artifact-root", str(tmp / "store"), "--tracking-uri", f"sqlite:///{tmp / 'm.db'}",
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_a_closed_stdout_ends_the_command_quietly_with_141(tmp_path, command):
    done = _into_closed_pipe(*COMMANDS[command](tmp_path), cwd=tmp_path)
    assert done.stderr == ""
    assert done.returncode == cli.EXIT_SIGPIPE == 141


def test_head_reads_the_first_lines_and_nothing_is_printed_to_stderr(tmp_path):
    # The shell case: `convflow models | head -n 2`, through two real processes.
    convflow = subprocess.Popen(
        [sys.executable, "-m", "convflow.pipelines.cli", "models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    head = subprocess.run(
        ["head", "-n", "2"], stdin=convflow.stdout, capture_output=True, text=True, check=True
    )
    convflow.stdout.close()
    err = convflow.stderr.read().decode()
    convflow.stderr.close()
    assert convflow.wait(timeout=300) in (0, 141)  # 0 when it wrote all before head left
    assert err == ""
    assert head.stdout.splitlines()[0].split() == ["model", "kind", "params", "inputs", "paper"]


def test_stdout_closed_tells_a_gone_reader_from_an_open_one_and_a_file(tmp_path, monkeypatch):
    read_fd, write_fd = os.pipe()
    with open(write_fd, "w") as pipe_out:
        monkeypatch.setattr(sys, "stdout", pipe_out)
        assert not cli.stdout_closed()  # the reader is still there
        os.close(read_fd)
        assert cli.stdout_closed()
        with open(tmp_path / "out.txt", "w") as file_out:
            monkeypatch.setattr(sys, "stdout", file_out)
            assert not cli.stdout_closed()
        monkeypatch.undo()
