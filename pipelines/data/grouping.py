"""Ingesting many batches in groups, so that Great Expectations runs once per group, not per batch.

A backfill of small batches (a year of daily files) was dominated by a fixed cost per batch, most
of it GX planning each suite run. ``Ingestor`` therefore prepares a group of batches (read,
conform, events already curated set aside), each against the history as if the batches before it
had been accepted, screens all of them with one GX run per suite (``group_screen``), and then
decides each in order: a cleared batch is curated; any other is validated on its own, exactly as
a single batch is. The first prepared batch that is not accepted ends the group (the history the
ones after it assumed did not happen): they are prepared again, in a group that starts small.
Groups grow from one batch, doubling while every batch is accepted, so a run of faulty batches
costs little more than ingesting them one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from contracts.progress import Progress, report
from pipelines.data.batch_result import BatchResult
from pipelines.data.quality import BatchValidator, Validation
from pipelines.data.sources.base import BatchInput, Conformed, Source

MAX_BATCHES = 64  # per group
MAX_BYTES = 256 * 2**20  # per group, as files: what one GX run holds in memory

# A batch that ends before validation (a duplicate, unreadable...): called to record it.
Exit = Callable[[], BatchResult]


@dataclass
class Prepared:
    """A batch read and conformed, waiting for its tables' suites."""

    landed: BatchInput
    result: BatchResult
    validation: Validation  # the raw suite's, when it has been run
    raw: pd.DataFrame | None  # the frame for the source's raw suite, if it has one
    raw_parameters: dict[str, Any]
    at_raw: tuple[BatchInput, BatchResult]  # the batch and result as its raw suite saw them
    conformed: Conformed
    frames: dict[str, pd.DataFrame]  # suite -> frame: the tables plus validation-only columns
    parameters: dict[str, Any]


def ingest_in_groups(
    ingest_group: Callable[[Source, Sequence[BatchInput]], list[BatchResult]],
    ingest_one: Callable[[Source, BatchInput], BatchResult],
    source: Source,
    batches: Sequence[BatchInput],
    progress: Progress | None = None,
) -> list[BatchResult]:
    """Ingest ``batches`` in order; ``ingest_group`` returns results for a prefix of a group."""
    results: list[BatchResult] = []
    pending, size = list(batches), 1
    while pending:
        group = _next_group(pending, size)
        done = ingest_group(source, group) if len(group) > 1 else [ingest_one(source, group[0])]
        results += done
        pending = pending[len(done):]
        size = min(2 * size, MAX_BATCHES) if len(done) == len(group) else 1
        report(progress, "ingest batches", len(results), len(batches))
    return results


def _next_group(pending: list[BatchInput], size: int) -> list[BatchInput]:
    """Up to ``size`` batches, fewer than ``MAX_BYTES``; a group never holds the same content
    twice (the second copy is a duplicate of the first, known only once that is recorded)."""
    group, hashes, total = [pending[0]], {pending[0].content_hash}, _size(pending[0])
    for batch in pending[1:size]:
        total += _size(batch)
        if batch.content_hash in hashes or total > MAX_BYTES:
            break
        group.append(batch)
        hashes.add(batch.content_hash)
    return group


def _size(batch: BatchInput) -> int:
    return 0 if batch.refused is not None else batch.size


def screen_prepared(validator: BatchValidator, source: Source,
                    prepared: list[Prepared]) -> dict[int, tuple[list | None, list | None]]:
    """For each prepared batch (by ``id``): the result ids of its raw suite and of its tables'
    suites when one GX run per suite cleared them, else None for that part."""
    ids = [p.landed.batch_id for p in prepared]
    raw: list[list | None] = [[] for _ in prepared]
    if source.raw_suite and prepared:
        raw = validator.screen_many(source.raw_suite, [p.raw for p in prepared],
                                    [p.raw_parameters for p in prepared], ids)
    tables: list[list | None] = [[] for _ in prepared]
    suites = dict.fromkeys(name for p in prepared for name in p.frames)
    for suite in suites:
        members = [i for i, p in enumerate(prepared) if suite in p.frames]
        cleared = validator.screen_many(suite, [prepared[i].frames[suite] for i in members],
                                        [prepared[i].parameters for i in members],
                                        [ids[i] for i in members])
        for i, result_ids in zip(members, cleared, strict=True):
            tables[i] = None if result_ids is None or tables[i] is None else (
                tables[i] + result_ids)
    return {id(p): (r, t) for p, r, t in zip(prepared, raw, tables, strict=True)}
