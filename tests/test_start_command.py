"""The README's "open the course" command serves the whole repository.

Notebooks 00-10 send learners to `exercises/` and `solutions/`; a JupyterLab whose root is
`notebooks/` cannot open them (404). Note that `jupyter lab notebooks/NAME.ipynb` alone is not
enough: jupyter_server then makes the file's folder the root. This test starts exactly the
command of the README's Start table, with `.venv/bin/` replaced by this interpreter's folder and
only these options added: `--no-browser`, a free port (no retries on another), a random token,
the loopback address and, as root, `--allow-root`. It asks the server for the three folders,
checks the notebook it would open, and always stops it. Slow (tests/conftest.py): it starts a
JupyterLab server, which takes a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
#: The row of the README's Start table that opens the course.
START_ROW = re.compile(r"^\|\s*open the course\s*\|\s*`([^`]+)`\s*\|", re.MULTILINE)
VENV_BIN = ".venv/bin/"
#: How long the server may take to answer at all (it usually needs a few seconds).
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
FOLDERS = ("notebooks", "exercises", "solutions")


def readme_start_command() -> list[str]:
    """The README's "open the course" command, as an argument list for this interpreter."""
    match = START_ROW.search(README.read_text(encoding="utf-8"))
    assert match, "README.md: no 'open the course' row in the Start table"
    args = shlex.split(match.group(1))
    assert args[0].startswith(VENV_BIN), f"expected a {VENV_BIN} program, got {args[0]!r}"
    program = Path(sys.executable).parent / args[0].removeprefix(VENV_BIN)
    return [str(program), *args[1:]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, token: str, path: str) -> tuple[int, bytes]:
    """GET http://127.0.0.1:<port><path> with the token; (status, body)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def stop(process: subprocess.Popen) -> None:
    """Terminate the server; kill it if it has not stopped after STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def test_readme_command_opens_a_real_notebook():
    args = readme_start_command()
    assert Path(args[0]).name == "jupyter" and args[1] == "lab", args
    for name in (arg for arg in args[2:] if not arg.startswith("-")):
        assert (REPO_ROOT / name).exists(), f"the README's command names a missing {name}"


def test_readme_command_serves_notebooks_exercises_and_solutions(tmp_path):
    pytest.importorskip("jupyterlab")
    args = readme_start_command()
    if not Path(args[0]).exists():
        pytest.skip(f"{args[0]} is not installed in this environment")
    port, token = free_port(), secrets.token_hex(16)
    command = [
        *args,
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # fail instead of moving to another port
        f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; Jupyter refuses otherwise
    env = dict(os.environ)
    # Keep the server's runtime and workspace files out of the user's home folder.
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"the server exited with {process.returncode}:\n"
                        + log_path.read_text(errors="replace")
                    )
                try:
                    if get(port, token, "/api/status")[0] == 200:
                        break
                except OSError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"no answer within {START_TIMEOUT_S:.0f} s:\n"
                        + log_path.read_text(errors="replace")
                    )
                time.sleep(0.5)

            for folder in FOLDERS:
                status, body = get(port, token, f"/api/contents/{folder}")
                assert status == 200, (
                    f"GET /api/contents/{folder} answered {status}: the server's root is not "
                    f"the repository\n{body[:500]!r}"
                )
                listed = {
                    entry["name"]
                    for entry in json.loads(body)["content"]
                    if entry["name"].endswith(".ipynb")
                }
                on_disk = {path.name for path in (REPO_ROOT / folder).glob("*.ipynb")}
                assert on_disk, f"{folder}/ holds no notebook"
                assert listed == on_disk, (folder, sorted(listed ^ on_disk))

            # The page the server would open in a browser shows the command's notebook, at its
            # path from the repository root (jupyter_server writes it to the runtime folder).
            opened = [arg for arg in args[2:] if arg.endswith(".ipynb")]
            pages = " ".join(
                page.read_text(encoding="utf-8")
                for page in (tmp_path / "runtime").glob("jpserver-*open.html")
            )
            for notebook in opened:
                assert f"tree/{Path(notebook).as_posix()}" in pages, (notebook, pages[:1000])
        finally:
            stop(process)
    assert process.returncode is not None
