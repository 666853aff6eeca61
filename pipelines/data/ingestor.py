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

With the data directory on an object store (``contracts.storage``), batches are still read from
local files: landing uploads them, and validating a landed folder reads a local copy of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from contracts.shopper_store import CATALOGUE_COLUMNS, open_store
from contracts.storage import DataPath, is_remote, local_copy, put, write_atomic
from contracts.tables import POSITIVE_EVENTS
from pipelines.data import row_faults
from pipelines.data.batch_history import BatchHistory, batch_stats, curated_event_ids, who_curated
from pipelines.data.batch_result import BatchResult
from pipelines.data.curated import item_ids, read_parquet
from pipelines.data.landing import (
    REFUSED_MARKER,
    from_marker,
    land_batch,
    screen,
    write_reference,
)
from pipelines.data.quality import BatchValidator, Finding, Validation
from pipelines.data.reports import write_summary
from pipelines.data.sources import get_source
from pipelines.data.sources.base import BatchInput, Conformed, Source, UnreadableBatch, rows_window
from pipelines.data.sources.reading import take_notes
from pipelines.data.spreadsheet_safe import neutralise_formulas
from pipelines.data.zones import DataDir, private_dir, write_json_atomic

log = logging.getLogger(__name__)

STORE_COLUMNS = ["user_id", "event_id", "item_id", "event_type", "timestamp"]
DUPLICATE_EVENT = "duplicate_event"


class Ingestor:
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

    def ingest(self, paths: Sequence[DataPath], source: Source | str) -> list[BatchResult]:
        """Ingest files or folders (landed folders on an object store are read from a local
        copy); one result per batch."""
        adapter = get_source(source) if isinstance(source, str) else source
        with ExitStack() as copies:
            paths = [copies.enter_context(local_copy(p)) for p in paths]
            refused = [from_marker(adapter, p) for p in paths if (p / REFUSED_MARKER).is_file()]
            paths = [p for p in paths if not (p / REFUSED_MARKER).is_file()]
            write_reference(self.data, adapter, paths, self.pseudonymiser)
            batches = screen(adapter.discover(paths), paths, self.settings) if paths else []
            return [self.ingest_batch(adapter, batch) for batch in [*refused, *batches]]

    def ingest_batch(self, source: Source, batch: BatchInput) -> BatchResult:
        result = BatchResult(
            batch=batch.batch_id,
            source=source.name,
            status="accepted",
            batch_date=batch.batch_date.isoformat() if batch.batch_date else None,
            content_hash=batch.content_hash,
        )
        previous = self._manifests.get(batch.content_hash)
        if previous is not None:
            result.status = "duplicate"
            result.reason = (
                f"same content as batch {previous['batch']} ingested at "
                f"{previous['ingested_at']} ({previous['status']}); nothing added"
            )
            result.report = previous.get("report")
            if batch.batch_id not in self._recorded:  # same bytes under another name
                self._record(batch, result)
            return result
        if batch.refused is not None:
            return self._quarantine(batch, result, Validation(), f"refused: {batch.refused}",
                                    ["refused"])
        landed = land_batch(self.data, batch)
        try:
            raw = source.read_raw(landed)
        except UnreadableBatch as err:
            return self._quarantine(landed, result, Validation(), f"unreadable: {err.reason}",
                                    ["readable"])
        malformed, dropped = take_notes(raw)  # rows set aside while reading (row_faults)
        result.rows_in, result.rows_malformed = len(raw) + len(malformed), len(malformed)
        limit = self.settings.max_bad_row_share
        if too_many := row_faults.too_many_malformed(malformed, result.rows_in, limit):
            return self._quarantine(landed, result, Validation(), too_many, [row_faults.FAILED])
        parameters = self.history.parameters(source.name, self.settings, landed)
        validation = Validation()
        if source.raw_suite:
            validation = self.validator.validate(
                landed.batch_id, {source.raw_suite: raw.drop(columns="_line")}, parameters
            )
            if not validation.passed:
                return self._quarantine(landed, result, validation)
        try:
            conformed = source.conform(raw, landed, self.pseudonymiser)
        except UnreadableBatch as err:
            return self._quarantine(landed, result, validation, f"unreadable: {err.reason}",
                                    ["readable"])
        except Exception as err:  # an adapter bug must not lose the batch or crash the run
            log.exception("adapter %s failed on %s", source.name, landed.batch_id)
            return self._quarantine(
                landed, result, validation,
                f"could not map to the data contract: {type(err).__name__}: {err}", ["conform"],
            )
        lines = row_faults.accepted_lines(raw, conformed)
        conformed = row_faults.with_malformed(conformed, malformed, dropped)
        accepted = len(conformed.tables[conformed.primary])
        if accepted + len(conformed.rejected) != result.rows_in:
            return self._quarantine(
                landed, result, validation,
                f"row accounting failed: {result.rows_in} rows in, {accepted} accepted, "
                f"{len(conformed.rejected)} rejected", ["row_accounting"],
            )
        result.dropped_columns = list(conformed.dropped_columns)
        result.rows_malformed = row_faults.count_malformed(conformed.rejected)
        if too_many := row_faults.too_many_malformed(conformed.rejected, result.rows_in, limit):
            return self._quarantine(landed, result, validation, too_many, [row_faults.FAILED])
        if source.window_from_rows:  # a multi-day or undated export: its rows give the window
            landed = rows_window(landed, conformed.tables.get("events"))
            result.batch_date = landed.batch_date and landed.batch_date.isoformat()
            parameters = self.history.parameters(source.name, self.settings, landed)
        conformed, earlier = self._without_curated_events(source.name, conformed, lines)
        if earlier and len(conformed.tables[conformed.primary]) == 0:
            return self._duplicate_events(landed, result, conformed, earlier)
        frames = dict(conformed.tables)
        if "events" in frames:
            frames["events"] = self._with_reference_checks(frames["events"], conformed)
        validation.merge(self.validator.validate(landed.batch_id, frames, parameters))
        if not validation.passed:
            return self._quarantine(landed, result, validation)
        return self._accept(landed, result, validation, conformed)

    def _without_curated_events(
        self, source: str, conformed: Conformed, lines: pd.Series | None = None
    ) -> tuple[Conformed, str | None]:
        """Set aside events already curated from ``source`` as ``duplicate_event`` rows.

        Returns the conformed batch without them and the batch that curated the first of them
        (None when there were none). Duplicates within the batch itself are left for the
        ``event_id`` uniqueness check, which quarantines the batch: which copy is right is for a
        person to decide.
        """
        seen = self.history.events.get(source)
        events = conformed.tables.get("events")
        if not seen or events is None or conformed.primary != "events" or not len(events):
            return conformed, None
        repeated = pd.Series([e in seen for e in events["event_id"]], index=events.index)
        if not repeated.any():
            return conformed, None
        earlier = who_curated(self.data, self._manifests.values(), source,
                               str(events.loc[repeated, "event_id"].iloc[0]))
        duplicates = events.loc[repeated].reset_index(drop=True)
        duplicates.insert(0, "reason", DUPLICATE_EVENT)
        if lines is not None:  # each keeps its source line, like every rejected row
            duplicates.insert(1, "_line", lines[repeated.to_numpy()].to_numpy())
        rejected = pd.concat([conformed.rejected, duplicates], ignore_index=True)
        tables = dict(conformed.tables, events=events.loc[~repeated].reset_index(drop=True))
        return dataclasses.replace(conformed, tables=tables, rejected=rejected), earlier

    def _duplicate_events(
        self, batch: BatchInput, result: BatchResult, conformed: Conformed, earlier: str
    ) -> BatchResult:
        """A batch whose every new-looking row is an event already curated: nothing is added."""
        rejected = conformed.rejected
        result.status = "duplicate"
        result.rows_accepted, result.rows_rejected = 0, len(rejected)
        result.rejected_reasons = _reason_counts(rejected)
        repeated = result.rejected_reasons.get(DUPLICATE_EVENT, 0)
        others = result.rows_rejected - repeated
        result.reason = (
            f"all {repeated} events already curated from this source (e.g. by batch {earlier})"
            + (f"; the other {others} rows set aside by the source's checks" if others else "")
            + "; nothing added"
        )
        result.report = str(write_summary(
            self.data.reports / "batches" / f"{batch.batch_id}.md", result, Validation(), None
        ))
        self._record(batch, result)
        return result

    def _with_reference_checks(self, events: pd.DataFrame, conformed: Conformed) -> pd.DataFrame:
        """Add validation-only columns naming items missing from the catalogue or never seen.

        Passing the catalogue to GX as a value set would be copied for every metric it computes;
        a column that is null when all is well keeps the failing item ids as GX's examples.
        """
        item = events["item_id"]
        known = self.history.known_items | _batch_items(conformed)
        return events.assign(
            unknown_item_id=item.where(~item.isin(known)),
            unseen_item_id=item.where(~item.isin(self.history.seen_items)),
        )

    def _quarantine(
        self,
        batch: BatchInput,
        result: BatchResult,
        validation: Validation,
        reason: str | None = None,
        failed: list[str] | None = None,
    ) -> BatchResult:
        folder = private_dir(self.data.quarantine / batch.batch_id)
        if batch.refused is None:
            for path in batch.files:
                put(path, folder / path.name)
        result.status = "quarantined"
        result.failed_expectations = failed or [f.label for f in validation.critical]
        result.warnings = [f.label for f in validation.warnings]
        result.reason = reason or "critical expectations failed: " + "; ".join(
            f.sentence() for f in validation.critical[:3]
        )
        result.rows_accepted = result.rows_rejected = 0
        result.validation_ids = validation.ids
        docs = self.validator.build_docs(validation)
        write_json_atomic(folder / "validation.json", validation.to_json())
        result.report = str(write_summary(folder / "summary.md", result, validation, docs))
        self._record(batch, result)
        return result

    def _accept(
        self, batch: BatchInput, result: BatchResult, validation: Validation, conformed: Conformed
    ) -> BatchResult:
        partition = batch.partition
        for table, frame in conformed.tables.items():
            _write_parquet(frame, self.data.curated_partition(table, partition), batch.batch_id)
        rejected = conformed.rejected
        result.rows_accepted = len(conformed.tables[conformed.primary])
        result.rows_rejected = len(rejected)
        result.rejected_reasons = _reason_counts(rejected)
        if len(rejected):
            folder = private_dir(self.data.rejected / f"batch_date={partition}")
            safe = neutralise_formulas(rejected)
            write_atomic(folder / f"{batch.batch_id}.csv",
                         lambda handle: safe.to_csv(handle, index=False))
        result.warnings = [f.label for f in validation.warnings]
        docs = self.validator.build_docs(validation) if validation.warnings else None
        report_dir = self.data.reports / "batches"
        if validation.warnings:
            details = report_dir / f"{batch.batch_id}.validation.json"
            write_json_atomic(details, validation.to_json())
        result.report = str(
            write_summary(report_dir / f"{batch.batch_id}.md", result, validation, docs)
        )
        stats = batch_stats(conformed.tables.get("events"))
        result.validation_ids = validation.ids
        self.history.known_items |= _batch_items(conformed)
        if "events" in conformed.tables:
            events = conformed.tables["events"]
            self.history.seen_items |= set(events["item_id"].astype(str))
            self.history.events.setdefault(batch.source, set()).update(
                events["event_id"].dropna().astype(str))
        if stats:
            self.history.recent.setdefault(batch.source, []).append(stats)
        self._record(batch, result, stats)
        if self.store is not None:  # after the record: a crash before this is caught up later
            self._store_safely(self.store.apply, batch.batch_id, conformed.tables.get("events"),
                               conformed.tables.get("items"))
        return result

    def _record(
        self, batch: BatchInput, result: BatchResult, stats: dict[str, float] | None = None
    ) -> None:
        files = [str(p) for p in batch.files]
        if is_remote(self.data.root) and batch.refused is None:  # read from a local copy
            folder = self.data.landing / batch.source / batch.batch_id
            files = [str(folder / p.name) for p in batch.files]
        manifest = result.to_json() | {
            "ingested_at": dt.datetime.now(dt.UTC).isoformat(),
            "files": files,
            "window": [str(t) for t in batch.window] if batch.window else None,
            "stats": stats,
        }
        if batch.content_hash in self._manifests:  # same bytes as an earlier batch, other name
            path = self.data.manifests / f"{batch.content_hash}.{batch.batch_id}.json"
        else:
            path = self.data.manifest_path(batch.content_hash)
            self._manifests[batch.content_hash] = manifest
        write_json_atomic(path, manifest)
        self._recorded.add(batch.batch_id)


def ingest(
    paths: Sequence[Path],
    source: str,
    settings: Settings,
    *,
    mapping: str | None = None,
    data_dir: DataPath | None = None,
) -> list[BatchResult]:
    """Ingest files or folders from one source into the data directory; one result per batch."""
    adapter = get_source(source, mapping)  # usage errors before anything is created
    return Ingestor(settings, data_dir).ingest(paths, adapter)


def _reason_counts(rejected: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in rejected["reason"].value_counts().items()}


def _batch_items(conformed: Conformed) -> set[str]:
    items = conformed.tables.get("items")
    return set(items["item_id"].dropna().astype(str)) if items is not None else set()


def _write_parquet(frame: pd.DataFrame, folder: DataPath, batch_id: str) -> None:
    private_dir(folder)
    write_atomic(folder / f"{batch_id}.parquet", lambda handle: frame.to_parquet(handle,
                                                                                index=False))


__all__ = ["BatchResult", "Finding", "Ingestor", "ingest"]
