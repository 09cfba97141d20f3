"""Start the service as a subprocess on 127.0.0.1 and always stop it (notebook 12).

    with start_server("bundles/quick") as server:
        httpx.post(f"{server.url}/recommend", json={"history": [1, 2], "k": 5})

The server's standard output and error go to temporary files (a pipe nobody reads could
fill up and block the server); their tail is in the error when the server does not come up.
The process is stopped on ``stop()``, on leaving the ``with`` block, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from recsys_lib.checks import check_choice, check_float, check_int
from recsys_lib.serving.scoring import SCORER_KINDS

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it).

    Notebook 12 explains it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A running ``python -m recsys_lib.serving``; a context manager that stops it.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        port: the port.
        process: the ``subprocess.Popen``.
        model_version: the version ``/health`` reported.

    Notebook 12 explains it.
    """

    def __init__(self, bundle: str | Path, port: int, scorer: str) -> None:
        self.port, self.url = port, f"http://{HOST}:{port}"
        self.model_version: str | None = None
        self._log = tempfile.TemporaryFile(mode="w+b")
        command = [sys.executable, "-m", "recsys_lib.serving", "--bundle", str(bundle),
                   "--host", HOST, "--port", str(port), "--scorer", scorer]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        atexit.register(self.stop)

    def health(self, timeout: float = 2.0) -> dict | None:
        """``/health``'s JSON, or None when the server does not answer 200 yet.

        Notebook 12 explains it.
        """
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as response:
                return json.loads(response.read()) if response.status == 200 else None
        except (OSError, ValueError):
            return None

    def wait_until_healthy(self, timeout: float) -> None:
        """Poll ``/health`` until it is ok, the process dies, or ``timeout`` seconds pass.

        Raises:
            RuntimeError: the process exited or never became healthy (the message has the
                tail of its output); the process is stopped first.

        Notebook 12 explains it.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the server exited with code {self.process.returncode} "
                                   f"before it was healthy; its output ends with:\n"
                                   f"{self.stderr_tail()}")
            answer = self.health()
            if answer and answer.get("status") == "ok":
                self.model_version = answer.get("model_version")
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server was not healthy after {timeout:.0f} s; its output "
                           f"ends with:\n{self.stderr_tail()}")

    def stderr_tail(self, n_chars: int = 3000) -> str:
        """The last characters the server wrote (standard output and error together).

        Notebook 12 explains it.
        """
        if self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")[-n_chars:]

    def running(self) -> bool:
        """Whether the process is still alive.

        Notebook 12 explains it.
        """
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> int | None:
        """Terminate the server (SIGTERM), kill it after ``grace`` seconds; idempotent.

        Returns:
            The exit code.

        Notebook 12 explains it.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(grace)
        atexit.unregister(self.stop)
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else f"stopped ({self.process.returncode})"
        return f"ServerProcess({self.url}, {state}, model_version={self.model_version!r})"


def start_server(bundle: str | Path, *, port: int | None = None, scorer: str = "compiled",
                 timeout: float = 120.0) -> ServerProcess:
    """Start ``python -m recsys_lib.serving`` on 127.0.0.1 and wait until ``/health`` is ok.

    Args:
        bundle: the bundle folder.
        port: the port; a free one when None.
        scorer: ``"compiled"``, ``"naive"`` or ``"batched"``.
        timeout: seconds to wait for ``/health`` (TensorFlow's import and the warm-up take
            several seconds).

    Returns:
        A healthy :class:`ServerProcess` (use it in a ``with`` block, or call ``stop()``).

    Raises:
        RuntimeError: the server exited or was not healthy in time (with its output's tail).
        ArgumentError: a bad port, scorer or timeout.

    Notebook 12 explains it.
    """
    check_choice("scorer", scorer, SCORER_KINDS)
    timeout = check_float("timeout", timeout)
    port = free_port() if port is None else check_int("port", port, maximum=65535)
    server = ServerProcess(bundle, port, scorer)
    server.wait_until_healthy(timeout)
    return server
