"""BentoML's per-request timeout (``traffic.timeout``), without its memory ramp.

BentoML 1.4.39's ``TimeoutMiddleware`` arms a timer for every request (``loop.call_later``) and
never disarms it. Each armed timer keeps its request's context (the OpenTelemetry span and what
hangs off it) alive for the whole timeout after the answer went out, so the server's memory
climbs by requests/s x timeout x ~6 KB, 220 MB at 650 requests/s and a 60 s timeout, before it
levels off. ``disarm_timers_when_answered`` makes the timer end with the request; timeouts still
answer 504 as before. Applied by ``serving.service`` in the server process. The project's one
``bentoml._internal`` import: BentoML has no public hook into the middleware it installs.
"""

from __future__ import annotations

import asyncio

from bentoml._internal.server.http.traffic import TimeoutMiddleware
from fastapi.responses import JSONResponse


async def _call(self: TimeoutMiddleware, scope, receive, send) -> None:
    """``TimeoutMiddleware.__call__`` as upstream, plus ``timer.cancel()`` when it returns."""
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    answered = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, answered)

    async def _send(message) -> None:
        if not answered.done():
            answered.set_result(None)
        await send(message)

    task = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await answered
    except TimeoutError:
        if task.cancel():
            response = JSONResponse(
                {"error": f"Not able to process the request in {self.timeout} seconds"},
                status_code=504,
            )
            await response(scope, receive, send)
    else:
        await task
    finally:
        timer.cancel()


def disarm_timers_when_answered() -> None:
    TimeoutMiddleware.__call__ = _call  # type: ignore[method-assign]
