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

import sys
import tempfile
from pathlib import Path
from typing import Any

from contracts import launch
from contracts.bento_store import server_home
from contracts.settings import Settings
from pipelines.steps.package import explained_recommendation, use_bentoml_store

STARTUP_TIMEOUT_S = 240.0


def check_bento(settings: Settings, bento_tag: str, version: str, pseudonym: str
                ) -> dict[str, Any]:
    """Serve ``bento_tag`` on a free loopback port, ask for ``pseudonym``'s explained
    recommendations, check they come from ``version``; returns what it saw."""
    store = use_bentoml_store(settings)
    with tempfile.TemporaryDirectory(prefix="shoprec-bento-check-") as tmp:
        port = launch.free_port()
        env: dict[str, str | None] = {
            "SHOPREC_MODEL_URI": None,
            "BENTOML_HOME": str(server_home(store, Path(tmp) / "bentoml")), "SHOPREC_DATA_DIR": tmp,
            "SHOPREC_PSEUDONYM_KEY": settings.require_pseudonym_key(),
            "SHOPREC_API_TOKEN": (settings.api_token.get_secret_value()
                                  if settings.api_token is not None else None)}
        bentoml = Path(sys.executable).with_name("bentoml")
        command = [str(bentoml), "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)]
        process = launch.spawn(command, port, Path(tmp) / "bento.log", env, ready="/readyz",
                               timeout_s=STARTUP_TIMEOUT_S)
        try:
            answer = explained_recommendation(settings, pseudonym,
                                              base_url=f"http://127.0.0.1:{port}")
        finally:
            launch.stop(process)
    served = str(answer["model"].get("version"))
    if served != str(version):
        raise AssertionError(f"the Bento {bento_tag} answered from version {served}, "
                             f"not the gated v{version}")
    return {"bento_tag": bento_tag, "version": served, "pseudonym": pseudonym,
            "items": [item["item_id"] for item in answer["items"]]}
