"""mlflow/README.md runs as written; mlflow/server.sh with auth refuses to start half-set-up."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, free_port

README = REPO / "mlflow" / "README.md"
INSTALL = "pip install -e '.[auth]'"


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def venv_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


@pytest.mark.parametrize(
    ("missing", "line"),
    [
        (
            "MLFLOW_FLASK_SERVER_SECRET_KEY",
            "error: MLFLOW_AUTH=1 needs MLFLOW_FLASK_SERVER_SECRET_KEY",
        ),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "error: MLFLOW_AUTH=1 needs MLFLOW_AUTH_ADMIN_PASSWORD"),
    ],
)
def test_auth_refuses_to_start_without_its_secrets(tmp_path, missing, line):
    env = venv_env(
        MLFLOW_AUTH="1",
        MLFLOW_DATA=str(tmp_path / "data"),
        MLFLOW_PORT=str(free_port()),
        MLFLOW_FLASK_SERVER_SECRET_KEY="k" * 32,
        MLFLOW_AUTH_ADMIN_PASSWORD="a-long-password",
    )
    del env[missing]
    done = subprocess.run(
        ["bash", str(REPO / "mlflow" / "server.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith(line) and done.stderr.count("\n") == 1


def test_the_auth_extra_is_installed_as_the_readme_says():
    import flask_wtf  # noqa: F401 - the package MLflow's auth app needs for CSRF

    setup = (REPO / "setup.py").read_text()
    assert '"auth": AUTH' in setup and "Flask-WTF==" in setup
    assert INSTALL in README.read_text()


@pytest.mark.slow
def test_every_command_in_the_readme_runs(tmp_path):
    """The README's bash blocks, in order, in one shell, in a fresh working directory.

    Only the ports change (5000-5002 -> free ports), and the `pip install` line is checked
    above instead of re-installing the package the tests run from.
    """
    text = README.read_text()
    blocks = bash_blocks(text)
    assert len(blocks) == 3
    script = "\n".join(blocks).replace(INSTALL, "true  # checked by the test above")
    for port in ("5000", "5001", "5002"):
        script = script.replace(port, str(free_port()))
    for name in ("mlflow", "configs"):
        (tmp_path / name).symlink_to(REPO / name)
    log = tmp_path / "readme.out"
    with open(log, "w") as out_file:  # a file, not a pipe: the servers keep their stdout open
        proc = subprocess.Popen(
            ["bash", "-c", "set -euxo pipefail\n" + script],
            cwd=tmp_path,
            env=venv_env(),
            stdout=out_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=1500)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the servers the README left running
    out = log.read_text()
    logs = "".join(
        f"\n--- {f.name}\n{f.read_text()[-1500:]}" for f in tmp_path.glob("mlflow-*.log")
    )
    assert proc.returncode == 0, out[-3000:] + logs
    codes = [line for line in out.splitlines() if re.fullmatch(r"\d{3}", line)]
    assert codes == ["401", "401", "200"]
    assert re.search(r"register: fashion_mnist_lenet version 1 \(created\) -> @challenger", out)
    assert re.search(r"champion +- +1 ", out)  # convflow history's first move
    db = tmp_path / "mlflow-auth" / "basic_auth.db"
    assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
