"""Infra validation: the exact packaged Bento of a gated version must serve before any alias moves.

A model can win the gate and still fail to serve (a missing file in the bundle, a dependency the
Bento does not pin, a service that cannot load it). So the DAG starts ``bentoml serve <tag>`` on
the Bento it just built for the gated version, on a free loopback port, away from the registry
(the Bento pins its model), and asks it for an explained ``/recommend`` for a shopper of the
evaluation window: the answer must come from that version, without the popularity fallback, and
every item's attributions must add up to its score (``package.explained_recommendation``). The
server and its ``_bentoml_impl`` workers are stopped whatever happens; a failure raises, and the
serving champion stays as it was.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from contracts.settings import Settings
from pipelines.package import explained_recommendation, use_bentoml_store

STARTUP_TIMEOUT_S = 240.0


def check_bento(settings: Settings, bento_tag: str, version: str, pseudonym: str
                ) -> dict[str, Any]:
    """Serve ``bento_tag`` on a free loopback port, ask for ``pseudonym``'s explained
    recommendations, check they come from ``version``; returns what it saw."""
    store = use_bentoml_store(settings)
    with tempfile.TemporaryDirectory(prefix="shoprec-bento-check-") as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MLFLOW_") and k != "SHOPREC_MODEL_URI"}
        env |= {"BENTOML_HOME": str(store), "SHOPREC_DATA_DIR": tmp,
                "SHOPREC_PSEUDONYM_KEY": settings.require_pseudonym_key()}
        if settings.api_token is not None:
            env["SHOPREC_API_TOKEN"] = settings.api_token.get_secret_value()
        bentoml = Path(sys.executable).with_name("bentoml")
        log = Path(tmp) / "bento.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(bentoml), "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(process, url, log)
            answer = explained_recommendation(settings, pseudonym, base_url=url)
        finally:
            _stop(process)
    served = str(answer["model"].get("version"))
    if served != str(version):
        raise AssertionError(f"the Bento {bento_tag} answered from version {served}, "
                             f"not the gated v{version}")
    return {"bento_tag": bento_tag, "version": served, "pseudonym": pseudonym,
            "items": [item["item_id"] for item in answer["items"]]}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Until ``/readyz`` answers 200 (the model is loaded); raises with the log's tail if the
    server exits or takes longer than ``STARTUP_TIMEOUT_S``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the Bento did not become ready at {url}:\n{tail}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group (BentoML serves from child processes, which
    may outlive a server that already exited)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
