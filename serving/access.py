"""Bearer-token access control and the readiness probe's message, as one pure ASGI middleware.

Pure ASGI (no per-request Request object) because it runs on every call of a latency-bound
endpoint. Health probes and the API documentation stay open so orchestrators and humans can
check the service without the secret.

``refuse_unsafe_start`` is the start-up gate of every way to run the service (``shoprec serve``
checks the same first, with a friendlier exit): no pseudonymisation key, or a non-loopback
address without a token, and the server does not start.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
from collections.abc import Callable

from contracts.settings import MissingPseudonymKey, Settings

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"  # the service's own default bind address (``bentoml serve`` too)

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/docs", "/docs.json", "/explore",
                        "/openapi.json", "/", "/schema.json"})
OPEN_PREFIXES = ("/static_content/", "/assets/", "/docs/")


class AccessMiddleware:
    """401 without the right ``Authorization: Bearer`` token (when one is configured), and a
    503 naming the problem on ``/readyz`` while no model is loaded."""

    def __init__(self, app, token: str | None, not_ready: Callable[[], str | None]) -> None:
        self.app, self.not_ready = app, not_ready
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/readyz" and (problem := self.not_ready()):
            return await _json(send, 503, {"detail": problem})
        if self.expected is not None and not _open(path):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return await _json(send, 401, {"detail": "missing or wrong bearer token"},
                                   [(b"www-authenticate", b"Bearer")])
        return await self.app(scope, receive, send)


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


async def _json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]})
    await send({"type": "http.response.body", "body": payload})


def serve_host() -> str | None:
    """The address ``bentoml serve`` was asked to listen on, read from its command line (the
    click context of ``serve`` that imports this service); None inside a worker process."""
    import click

    context = click.get_current_context(silent=True)
    if context is None or "host" not in context.params:
        return None
    return context.params["host"] or DEFAULT_HOST


def refuse_unsafe_start(settings: Settings, host: str | None) -> None:
    """Exit (status 2, one line on stderr) without a pseudonymisation key, or when ``host`` is
    not loopback and no API token is set (unless ``serve_insecure``, which warns)."""
    try:
        settings.require_pseudonym_key()
    except MissingPseudonymKey as err:
        _refuse(str(err))
    if host is None:
        return
    problem = settings.open_access_problem(host)
    if problem:
        _refuse(problem)
    if settings.with_values(serve_insecure=False).open_access_problem(host):
        log.warning("listening on %s without an API token (SHOPREC_SERVE_INSECURE): every "
                    "route, /admin/reload included, is open to anyone who can reach it", host)


def _refuse(message: str) -> None:
    print(f"shoprec: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
