"""Start a server (``shoprec serve``, ``bentoml serve <bento>``) as a child process and wait for it.

Tests, the load benchmark and the DAG's check of a packaged Bento all drive the real server over
HTTP, started exactly as an operator starts it, and stop its whole process group afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(url: str) -> int | None:
    """HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def start(
    data_dir: Path, port: int, log: Path, env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """``shoprec serve`` on 127.0.0.1:port, returned once ``/healthz`` answers 200."""
    shoprec = Path(sys.executable).with_name("shoprec")
    return spawn([str(shoprec), "serve", "--host", "127.0.0.1", "--port", str(port),
                  "--data-dir", str(data_dir), *args], port, log, env)


def spawn(
    command: list[str], port: int, log: Path, env: Mapping[str, str | None] | None = None,
    ready: str = "/healthz", timeout_s: float = STARTUP_TIMEOUT_S,
) -> subprocess.Popen[bytes]:
    """Any server command, once ``ready`` answers 200 (``/readyz``: the model is loaded too).
    ``env`` adds variables to this process's (``MLFLOW_*`` left out); ``None`` removes one."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment |= dict(env or {})
    environment = {k: v for k, v in environment.items() if v is not None}
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while status(f"http://127.0.0.1:{port}{ready}") != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{command[0]} did not come up on port {port}:\n{tail}")
        time.sleep(0.25)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group: BentoML serves from child processes, which
    may outlive a server that already exited."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
