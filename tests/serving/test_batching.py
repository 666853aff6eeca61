"""The micro-batcher: right result to each caller, failures to the callers of that batch only."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.batching import MicroBatcher


def _slow_square(works):
    time.sleep(0.02)  # long enough for concurrent callers to queue behind a running batch
    if any(w < 0 for w in works):
        raise ValueError("negative")
    return [w * w for w in works]


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    batcher = MicroBatcher(_slow_square)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(batcher.submit, range(40)))
    assert [result for result, _ in answers] == [n * n for n in range(40)]
    assert max(size for _, size in answers) > 1, "queued callers ran together"


def test_a_lone_caller_runs_alone_and_at_once() -> None:
    batcher = MicroBatcher(_slow_square)
    started = time.perf_counter()
    assert batcher.submit(3) == (9, 1)
    assert time.perf_counter() - started < 0.5


def test_a_failed_batch_fails_its_callers_and_the_batcher_recovers() -> None:
    calls = []
    gate = threading.Event()

    def execute(works):
        calls.append(list(works))
        gate.wait(1)
        return _slow_square(works)

    batcher = MicroBatcher(execute)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.submit, 1)
        time.sleep(0.05)
        bad = pool.submit(batcher.submit, -1)  # queues behind the running batch
        time.sleep(0.05)
        gate.set()
        assert first.result() == (1, 1)
        with pytest.raises(ValueError, match="negative"):
            bad.result()
    assert batcher.submit(4)[0] == 16
