"""BentoML's request timeout, patched: the timer ends with the answer, a slow answer still 504s."""

from __future__ import annotations

import asyncio
import json

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from serving.request_timeout import disarm_timers_when_answered

disarm_timers_when_answered()


async def _answer(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _stall(scope, receive, send) -> None:
    await asyncio.sleep(10)


async def _request(app, timeout: float) -> tuple[list[dict], list[asyncio.TimerHandle]]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    await TimeoutMiddleware(app, timeout=timeout)({"type": "http"}, receive, send)
    loop = asyncio.get_running_loop()
    armed = [h for h in loop._scheduled if not h.cancelled()]  # asyncio's timer heap
    return sent, armed


def test_an_answered_request_leaves_no_timer_holding_it() -> None:
    sent, armed = asyncio.run(_request(_answer, timeout=60))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert armed == [], "the 60 s timer (and the request it holds) outlived the answer"


def test_a_request_over_the_timeout_still_gets_504() -> None:
    sent, _ = asyncio.run(_request(_stall, timeout=0.05))
    assert sent[0]["status"] == 504
    assert "0.05 seconds" in json.loads(sent[1]["body"])["error"]
