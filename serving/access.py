"""Bearer-token access control and the readiness probe's message, as one pure ASGI middleware.

Pure ASGI (no per-request Request object) because it runs on every call of a latency-bound
endpoint. Health probes and the API documentation stay open so orchestrators and humans can
check the service without the secret.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/docs", "/docs.json",
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
