"""Opportunistic micro-batching on one model thread: concurrent requests share one model call.

Requests queue their work and get a future. One thread runs the model: it takes everything
queued as one batch, and when that batch is done, everything that queued meanwhile as the next.
Nothing ever sleeps waiting for company, so a lone request pays no extra latency, and under load
the per-call cost of the TensorFlow graphs is shared (eight users per call cost about 40 % of
eight calls on this two-core machine). The HTTP event loop only awaits futures: it never blocks
on the model, and no request needs a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Runs ``execute(works) -> results`` (same order) over whatever is queued, one at a time;
    ``on_batch`` hears each batch's size and seconds (the endpoint's metrics)."""

    def __init__(self, execute: Callable[[Sequence[T]], Sequence[R]],
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.execute, self.on_batch = execute, on_batch
        self._lock = threading.Lock()
        self._queue: list[tuple[T, Future[R]]] = []
        self._draining = False
        # One thread, kept while the batcher lives (its idle thread exits once this is dropped,
        # as after a model reload).
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="shoprec-model")

    def submit(self, work: T) -> Future[R]:
        """Queue ``work``; the future holds its result (or the batch's error)."""
        future: Future[R] = Future()
        with self._lock:
            self._queue.append((work, future))
            if not self._draining:
                self._draining = True
                self._worker.submit(self._drain)
        return future

    def __call__(self, work: T) -> R:
        """Blocking: for callers on their own thread (in-process use, tests)."""
        return self.submit(work).result()

    async def run(self, work: T) -> R:
        """Awaitable: for the event loop, which must never block on the model."""
        return await asyncio.wrap_future(self.submit(work))

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._draining = False
                    return
            self._run(batch)

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        # Callers that gave up (a client gone, a timeout) are left out; the rest can no longer
        # be cancelled, so every result below has a future to land in.
        batch = [(work, future) for work, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        start = time.perf_counter()
        try:
            results = self.execute([work for work, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} returned {len(results)} results")
        except Exception as err:  # every caller of a failed batch sees the failure
            for _, future in batch:
                future.set_exception(err)
            return
        seconds = time.perf_counter() - start
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(len(batch), seconds)
