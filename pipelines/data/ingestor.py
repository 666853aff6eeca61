"""Ingestion: land each batch, validate it, then either curate it or quarantine it whole.

Every landed row ends up accepted into ``curated/`` or set aside in ``rejected/`` with its reason;
a batch that fails a critical check goes to ``quarantine/`` untouched with a readable summary.
A malformed row is set aside like any other; only too many of them quarantine the file
(``row_faults``). A batch's manifest is written last, so a crash half way leaves no batch
half-loaded: re-running overwrites the same files and then records the batch.

Nothing is counted twice. A batch's identity is its content (``BatchInput.content_hash``): the
same bytes again, under any name, are a ``duplicate``. An event already curated from the same
source (same ``event_id``) is never added again, even from a re-export with other bytes: such rows
are set aside as ``duplicate_event``, and a batch that would add nothing else is a ``duplicate``.

Inputs are screened before anything is read: symbolic links and paths outside the folders given
are refused (never followed), and a batch over ``Settings.max_batch_bytes`` is refused unread;
both are quarantined with the reason, without a copy of their content.

Many batches at once (a backfill) are screened in groups, one Great Expectations run per suite
per group (``grouping``); a batch the screen does not clear is validated alone, as a single one.

With the data directory on an object store (``contracts.storage``), batches are still read from
local files: landing uploads them, and validating a landed folder reads a local copy of it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.progress import Progress
from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from contracts.shopper_store import CATALOGUE_COLUMNS, open_store
from contracts.storage import DataPath, local_copy
from contracts.tables import POSITIVE_EVENTS
from pipelines.data import row_faults
from pipelines.data.batch_history import (
    BatchHistory,
    batch_items,
    batch_stats,
    curated_event_ids,
    who_curated,
)
from pipelines.data.batch_result import BatchResult
from pipelines.data.curated import item_ids, read_parquet
from pipelines.data.grouping import Exit, Prepared, ingest_in_groups, screen_prepared
from pipelines.data.landing import REFUSED_MARKER, from_marker, land_batch, screen, write_reference
from pipelines.data.outcomes import DUPLICATE_EVENT, BatchOutcomes
from pipelines.data.quality import BatchValidator, Finding, Validation
from pipelines.data.sources import get_source
from pipelines.data.sources.base import BatchInput, Conformed, Source, UnreadableBatch, rows_window
from pipelines.data.sources.reading import take_notes
from pipelines.data.zones import DataDir

log = logging.getLogger(__name__)

STORE_COLUMNS = ["user_id", "event_id", "item_id", "event_type", "timestamp"]


class Ingestor(BatchOutcomes):
    """Ingests batches into one data directory; holds the GX context and history across batches."""

    def __init__(self, settings: Settings, data_dir: DataPath | None = None) -> None:
        if data_dir is not None:  # what defaults to the data dir (the shopper store) follows it
            settings = settings.with_values(data_dir=data_dir)
        self.settings = settings
        self.data = DataDir(data_dir or settings.data_dir).create()
        self.validator = BatchValidator(settings.expectations_dir, self.data, settings.data_docs)
        self.pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
        manifests = self.data.read_manifests()
        self._manifests: dict[str, dict[str, Any]] = {}  # content hash -> the first batch of it
        for manifest in manifests:
            known = self._manifests.get(manifest["content_hash"])
            if known is None or (known["status"] == "duplicate" != manifest["status"]):
                self._manifests[manifest["content_hash"]] = manifest
        self._recorded = {m["batch"] for m in manifests}
        recent: dict[str, list[dict[str, float]]] = {}
        for manifest in self._manifests.values():
            if manifest["status"] == "accepted" and manifest.get("stats"):
                recent.setdefault(manifest["source"], []).append(manifest["stats"])
        self.history = BatchHistory(
            known_items=item_ids(self.data, "items"),
            seen_items=item_ids(self.data, "events"),
            recent=recent,
            size=settings.history_batches,
            events=curated_event_ids(self.data, manifests),
        )
        url = settings.shopper_store_url
        self.store = open_store(url, settings.shopper_store_limit) if url else None
        if self.store is not None:
            self._store_safely(self._catch_up_store, manifests)

    def _store_safely(self, write, *args) -> None:
        """The shopper store is derived from curated data: an outage never fails ingestion, and
        what it missed is caught up by the next run."""
        try:
            write(*args)
        except Exception as err:
            log.warning("shopper store not updated (%s: %s); the next ingest catches it up",
                        type(err).__name__, err)

    def _catch_up_store(self, manifests: Iterable[dict[str, Any]]) -> None:
        """Apply the accepted batches the shopper store lacks, oldest first: a store set up
        after the data, or an ingest killed between recording a batch and writing the store."""
        applied = self.store.applied()
        missing = sorted((m for m in manifests if m["status"] == "accepted"
                          and m["batch"] not in applied), key=lambda m: m["ingested_at"])
        if not missing:
            return
        files = {}
        for table in ("events", "items"):
            root = self.data.curated / table
            files[table] = ({f.stem: f for f in root.glob("batch_date=*/*.parquet")}
                            if root.is_dir() else {})
        for manifest in missing:
            events, items = (files[t].get(manifest["batch"]) for t in ("events", "items"))
            self.store.apply(
                manifest["batch"],
                read_parquet(events, STORE_COLUMNS, [("event_type", "in", list(POSITIVE_EVENTS))])
                if events is not None else None,
                read_parquet(items, list(CATALOGUE_COLUMNS)) if items is not None else None)
        log.info("shopper store: applied %d earlier batches", len(missing))

    def ingest(self, paths: Sequence[DataPath], source: Source | str,
               progress: Progress | None = None) -> list[BatchResult]:
        """Ingest files or folders (landed folders on an object store are read from a local
        copy); one result per batch."""
        adapter = get_source(source) if isinstance(source, str) else source
        with ExitStack() as copies:
            paths = [copies.enter_context(local_copy(p)) for p in paths]
            refused = [from_marker(adapter, p) for p in paths if (p / REFUSED_MARKER).is_file()]
            paths = [p for p in paths if not (p / REFUSED_MARKER).is_file()]
            write_reference(self.data, adapter, paths, self.pseudonymiser)
            batches = screen(adapter.discover(paths), paths, self.settings) if paths else []
            return self.ingest_batches(adapter, [*refused, *batches], progress)

    def ingest_batches(self, source: Source, batches: Sequence[BatchInput],
                       progress: Progress | None = None) -> list[BatchResult]:
        """Ingest batches in order, screened in groups (``grouping``); one result each."""
        return ingest_in_groups(self._ingest_group, self.ingest_batch, source, batches,
                                progress)

    def ingest_batch(self, source: Source, batch: BatchInput) -> BatchResult:
        """Ingest one batch, validated on its own."""
        prepared = self._prepare(source, batch, self.history, validate_raw=True)
        return self._validated(prepared) if isinstance(prepared, Prepared) else prepared()

    def _ingest_group(self, source: Source, group: Sequence[BatchInput]) -> list[BatchResult]:
        """Prepare each batch against the history as if the ones before it were accepted, screen
        them all at once, then decide each in order. Returns the results of a prefix of the
        group: it ends at the first prepared batch not accepted, since the ones after it were
        prepared on a history that did not happen (the caller prepares them again)."""
        history = self.history.copy()
        slots: list[Prepared | Exit] = []
        for batch in group:
            slot = self._prepare(source, batch, history, validate_raw=False)
            if isinstance(slot, Prepared):
                history.add(source.name, slot.conformed.tables,
                            batch_stats(slot.conformed.tables.get("events")))
            slots.append(slot)
        prepared = [s for s in slots if isinstance(s, Prepared)]
        screened = screen_prepared(self.validator, source, prepared)
        with self.validator.docs_deferred():
            return self._decide_in_order(source, group, slots, screened)

    def _decide_in_order(self, source: Source, group: Sequence[BatchInput],
                         slots: list[Prepared | Exit], screened: dict[int, Any],
                         ) -> list[BatchResult]:
        results = []
        for batch, slot in zip(group, slots, strict=True):
            if not isinstance(slot, Prepared):  # the raw suite's verdict comes first
                results.append(self.ingest_batch(source, batch) if source.raw_suite else slot())
                continue
            raw_ids, contract_ids = screened[id(slot)]
            if raw_ids is None:
                result = self._raw_validated(source, slot, contract_ids)
            elif contract_ids is None:
                slot.validation = Validation(result_ids=raw_ids)
                result = self._validated(slot)
            else:
                result = self._accept(slot.landed, slot.result,
                                      Validation(result_ids=raw_ids + contract_ids), slot.conformed)
            results.append(result)
            if result.status != "accepted":
                break
        return results

    def _prepare(self, source: Source, batch: BatchInput, history: BatchHistory,
                 validate_raw: bool) -> Prepared | Exit:
        """Everything before the contract suites: read, set rows aside, conform, drop events
        already curated (per ``history``). A batch that ends here gets an ``Exit``, called to
        record it; nothing is recorded before that. The raw suite (``validate_raw``) is run
        here, or screened with the group's."""
        result = BatchResult(
            batch=batch.batch_id,
            source=source.name,
            status="accepted",
            batch_date=batch.batch_date.isoformat() if batch.batch_date else None,
            content_hash=batch.content_hash,
        )
        previous = self._manifests.get(batch.content_hash)
        if previous is not None:
            return lambda: self._duplicate(batch, result, previous)
        if batch.refused is not None:
            return lambda: self._quarantine(batch, result, Validation(),
                                            f"refused: {batch.refused}", ["refused"])
        landed = land_batch(self.data, batch)
        try:
            raw = source.read_raw(landed)
        except UnreadableBatch as err:
            reason = f"unreadable: {err.reason}"
            return lambda: self._quarantine(landed, result, Validation(), reason, ["readable"])
        malformed, dropped = take_notes(raw)  # rows set aside while reading (row_faults)
        result.rows_in, result.rows_malformed = len(raw) + len(malformed), len(malformed)
        limit = self.settings.max_bad_row_share
        if too_many := row_faults.too_many_malformed(malformed, result.rows_in, limit):
            return lambda: self._quarantine(landed, result, Validation(), too_many,
                                            [row_faults.FAILED])
        parameters = raw_parameters = history.parameters(source.name, self.settings, landed)
        validation = Validation()
        raw_frame = raw.drop(columns="_line") if source.raw_suite else None
        at_raw = (landed, dataclasses.replace(result))
        if source.raw_suite and validate_raw:
            validation = self.validator.validate(
                landed.batch_id, {source.raw_suite: raw_frame}, parameters
            )
            if not validation.passed:
                return lambda: self._quarantine(landed, result, validation)
        try:
            conformed = source.conform(raw, landed, self.pseudonymiser)
        except UnreadableBatch as err:
            reason = f"unreadable: {err.reason}"
            return lambda: self._quarantine(landed, result, validation, reason, ["readable"])
        except Exception as err:  # an adapter bug must not lose the batch or crash the run
            log.exception("adapter %s failed on %s", source.name, landed.batch_id)
            reason = f"could not map to the data contract: {type(err).__name__}: {err}"
            return lambda: self._quarantine(landed, result, validation, reason, ["conform"])
        lines = row_faults.accepted_lines(raw, conformed)
        conformed = row_faults.with_malformed(conformed, malformed, dropped)
        accepted = len(conformed.tables[conformed.primary])
        if accepted + len(conformed.rejected) != result.rows_in:
            reason = (f"row accounting failed: {result.rows_in} rows in, {accepted} accepted, "
                      f"{len(conformed.rejected)} rejected")
            return lambda: self._quarantine(landed, result, validation, reason,
                                            ["row_accounting"])
        result.dropped_columns = list(conformed.dropped_columns)
        result.rows_malformed = row_faults.count_malformed(conformed.rejected)
        if too_many := row_faults.too_many_malformed(conformed.rejected, result.rows_in, limit):
            return lambda: self._quarantine(landed, result, validation, too_many,
                                            [row_faults.FAILED])
        if source.window_from_rows:  # a multi-day or undated export: its rows give the window
            landed = rows_window(landed, conformed.tables.get("events"))
            result.batch_date = landed.batch_date and landed.batch_date.isoformat()
            parameters = history.parameters(source.name, self.settings, landed)
        conformed, repeated = self._without_curated_events(source.name, conformed, history,
                                                            lines)
        if repeated is not None and len(conformed.tables[conformed.primary]) == 0:
            return lambda: self._duplicate_events(
                landed, result, conformed,
                who_curated(self.data, self._manifests.values(), source.name, repeated))
        frames = dict(conformed.tables)
        if "events" in frames:
            frames["events"] = _with_reference_checks(frames["events"], conformed, history)
        return Prepared(landed, result, validation, raw_frame, raw_parameters, at_raw, conformed,
                        frames, parameters)

    def _raw_validated(self, source: Source, prepared: Prepared,
                       contract_ids: list | None) -> BatchResult:
        """Validate a prepared batch's raw frame on its own, as ``ingest_batch`` does; its tables
        too, unless the screen cleared them (``contract_ids``)."""
        batch, result = prepared.at_raw
        assert source.raw_suite is not None
        validation = self.validator.validate(batch.batch_id, {source.raw_suite: prepared.raw},
                                             prepared.raw_parameters)
        if not validation.passed:
            return self._quarantine(batch, result, validation)
        prepared.validation = validation
        if contract_ids is None:
            return self._validated(prepared)
        validation.merge(Validation(result_ids=contract_ids))
        return self._accept(prepared.landed, prepared.result, validation, prepared.conformed)

    def _validated(self, prepared: Prepared) -> BatchResult:
        """Validate a prepared batch's tables on its own, then curate or quarantine it."""
        validation, landed = prepared.validation, prepared.landed
        validation.merge(self.validator.validate(landed.batch_id, prepared.frames,
                                                 prepared.parameters))
        if not validation.passed:
            return self._quarantine(landed, prepared.result, validation)
        return self._accept(landed, prepared.result, validation, prepared.conformed)

    def _without_curated_events(
        self, source: str, conformed: Conformed, history: BatchHistory,
        lines: pd.Series | None = None,
    ) -> tuple[Conformed, str | None]:
        """Set aside events already curated from ``source`` (per ``history``) as
        ``duplicate_event`` rows.

        Returns the conformed batch without them and the first of their ids (None when there
        were none). Duplicates within the batch itself are left for the ``event_id`` uniqueness
        check, which quarantines the batch: which copy is right is for a person to decide.
        """
        seen = history.events.get(source)
        events = conformed.tables.get("events")
        if not seen or events is None or conformed.primary != "events" or not len(events):
            return conformed, None
        repeated = pd.Series([e in seen for e in events["event_id"]], index=events.index)
        if not repeated.any():
            return conformed, None
        first = str(events.loc[repeated, "event_id"].iloc[0])
        duplicates = events.loc[repeated].reset_index(drop=True)
        duplicates.insert(0, "reason", DUPLICATE_EVENT)
        if lines is not None:  # each keeps its source line, like every rejected row
            duplicates.insert(1, "_line", lines[repeated.to_numpy()].to_numpy())
        rejected = pd.concat([conformed.rejected, duplicates], ignore_index=True)
        tables = dict(conformed.tables, events=events.loc[~repeated].reset_index(drop=True))
        return dataclasses.replace(conformed, tables=tables, rejected=rejected), first


def ingest(
    paths: Sequence[Path],
    source: str,
    settings: Settings,
    *,
    mapping: str | None = None,
    data_dir: DataPath | None = None,
    progress: Progress | None = None,
) -> list[BatchResult]:
    """Ingest files or folders from one source into the data directory; one result per batch."""
    adapter = get_source(source, mapping)  # usage errors before anything is created
    return Ingestor(settings, data_dir).ingest(paths, adapter, progress)


def _with_reference_checks(events: pd.DataFrame, conformed: Conformed,
                           history: BatchHistory) -> pd.DataFrame:
    """Add validation-only columns naming items missing from the catalogue or never seen.

    Passing the catalogue to GX as a value set would be copied for every metric it computes;
    a column that is null when all is well keeps the failing item ids as GX's examples.
    """
    item = events["item_id"]
    plain = item.astype(object)  # Arrow strings would box every member of the sets first
    known = history.known_items | batch_items(conformed.tables)
    return events.assign(
        unknown_item_id=item.where(~plain.isin(known).to_numpy()),
        unseen_item_id=item.where(~plain.isin(history.seen_items).to_numpy()),
    )


__all__ = ["BatchResult", "Finding", "Ingestor", "ingest"]
