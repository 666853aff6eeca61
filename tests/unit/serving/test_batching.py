"""The micro-batcher: right result to each caller, failures to the callers of that batch only."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from serving.batching import MicroBatcher


class _SlowSquare:
    """Squares, slowly enough for concurrent callers to queue behind a running batch."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.gate = gate

    def __call__(self, works):
        self.batches.append(list(works))
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(1)
        time.sleep(0.02)
        if any(w < 0 for w in works):
            raise ValueError("negative")
        return [w * w for w in works]


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    square = _SlowSquare()
    batcher = MicroBatcher(square)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(batcher, range(40)))
    assert answers == [n * n for n in range(40)]
    assert max(len(batch) for batch in square.batches) > 1, "queued callers ran together"
    assert sorted(w for batch in square.batches for w in batch) == list(range(40))
    assert len(square.threads) == 1, "all model work runs on the batcher's one thread"


def test_awaiting_callers_share_batches_without_blocking_the_event_loop() -> None:
    square = _SlowSquare()
    batcher = MicroBatcher(square)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        clock = asyncio.create_task(ticker())
        answers = await asyncio.gather(*(batcher.run(n) for n in range(20)))
        clock.cancel()
        return answers, ticks

    answers, ticks = asyncio.run(main())
    assert answers == [n * n for n in range(20)]
    assert len(square.batches) < 20, "awaiting callers were batched"
    assert ticks > 5, "the event loop kept running while the model worked"


def test_a_lone_caller_runs_alone_and_at_once() -> None:
    square = _SlowSquare()
    batcher = MicroBatcher(square)
    started = time.perf_counter()
    assert batcher(3) == 9
    assert time.perf_counter() - started < 0.5
    assert square.batches == [[3]]


def _busy() -> tuple[threading.Event, _SlowSquare, MicroBatcher, Future]:
    """A batcher whose first batch ([1]) is running and held until the gate opens."""
    gate = threading.Event()
    square = _SlowSquare(gate)
    batcher = MicroBatcher(square)
    first = batcher.submit(1)
    time.sleep(0.05)
    return gate, square, batcher, first


def test_a_failed_batch_fails_its_callers_and_the_batcher_recovers() -> None:
    gate, _, batcher, first = _busy()
    bad, good = batcher.submit(-1), batcher.submit(2)  # queue behind the running batch, together
    gate.set()
    assert first.result() == 1
    with pytest.raises(ValueError, match="negative"):
        bad.result()
    with pytest.raises(ValueError, match="negative"):
        good.result()  # same batch as the bad one
    assert batcher(4) == 16


def test_a_caller_that_gave_up_is_left_out_and_the_rest_are_answered() -> None:
    gate, square, batcher, first = _busy()
    gone, kept = batcher.submit(5), batcher.submit(6)
    assert gone.cancel()
    gate.set()
    assert first.result() == 1 and kept.result() == 36
    assert square.batches[-1] == [6]
    assert batcher(7) == 49
