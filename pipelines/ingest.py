"""Ingestion: land each batch, validate it, then either curate it or quarantine it whole.

Every landed row ends up accepted into ``curated/`` or set aside in ``rejected/`` with its reason;
a batch that fails a critical check goes to ``quarantine/`` untouched with a readable summary. A
batch's manifest is written last, so a crash half way leaves no batch half-loaded: re-running
overwrites the same files and then records the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from pipelines.batch_result import BatchResult
from pipelines.curated import item_ids
from pipelines.reports import write_summary
from pipelines.sources import get_source
from pipelines.sources.base import BatchInput, Conformed, Source, UnreadableBatch
from pipelines.validate import BatchValidator, Finding, Validation
from pipelines.zones import DataDir, write_json_atomic

log = logging.getLogger(__name__)

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_FAR_FUTURE = pd.Timestamp("2200-01-01", tz="UTC")


@dataclass
class _History:
    """What the warning checks compare a batch with, kept in memory across one ingestion run."""

    known_items: set[str]  # the catalogue: events must reference these
    seen_items: set[str]  # items that already had events: new ones are cold for the model
    recent: dict[str, list[dict[str, float]]]  # source -> stats of recent accepted event batches
    size: int

    def parameters(self, source: str, settings: Settings, batch: BatchInput) -> dict[str, Any]:
        stats = self.recent.get(source, [])[-self.size :]
        now = pd.Timestamp.now(tz="UTC")
        start, end = batch.window or (_EPOCH, _FAR_FUTURE)

        def limit(key: str) -> float | None:
            values = [s[key] for s in stats if s.get(key) is not None]
            return float(np.median(values)) * settings.outlier_factor if values else None

        rows = [s["rows"] for s in stats]
        return {
            "window_start": start,
            "window_end": end,
            "now": now,
            "price_max": limit("price_p99"),
            "quantity_max": limit("quantity_p99"),
            "min_rows": float(np.median(rows)) * settings.volume_drop_ratio if rows else 0,
            "seen_items_mostly": 1 - settings.unseen_items_max_share if self.seen_items else 0.0,
        }


class Ingestor:
    """Ingests batches into one data directory; holds the GX context and history across batches."""

    def __init__(self, settings: Settings, data_dir: Path | None = None) -> None:
        self.settings = settings
        self.data = DataDir(data_dir or settings.data_dir).create()
        self.validator = BatchValidator(settings.expectations_dir, self.data, settings.data_docs)
        self.pseudonymiser = Pseudonymiser(settings.pseudonym_key.get_secret_value())
        self._manifests = {m["content_hash"]: m for m in self.data.read_manifests()}
        recent: dict[str, list[dict[str, float]]] = {}
        for manifest in self._manifests.values():
            if manifest["status"] == "accepted" and manifest.get("stats"):
                recent.setdefault(manifest["source"], []).append(manifest["stats"])
        self.history = _History(
            known_items=item_ids(self.data, "items"),
            seen_items=item_ids(self.data, "events"),
            recent=recent,
            size=settings.history_batches,
        )

    def ingest(self, paths: Sequence[Path], source: Source | str) -> list[BatchResult]:
        adapter = get_source(source) if isinstance(source, str) else source
        write_reference(self.data, adapter, paths, self.pseudonymiser)
        return [self.ingest_batch(adapter, batch) for batch in adapter.discover(paths)]

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
            return result
        landed = land_batch(self.data, batch)
        try:
            raw = source.read_raw(landed)
        except UnreadableBatch as err:
            return self._quarantine(landed, result, Validation(), f"unreadable: {err.reason}",
                                    ["readable"])
        result.rows_in = len(raw)
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
        accepted = len(conformed.tables[conformed.primary])
        if accepted + len(conformed.rejected) != result.rows_in:
            return self._quarantine(
                landed, result, validation,
                f"row accounting failed: {result.rows_in} rows in, {accepted} accepted, "
                f"{len(conformed.rejected)} rejected", ["row_accounting"],
            )
        frames = dict(conformed.tables)
        if "events" in frames:
            frames["events"] = self._with_reference_checks(frames["events"], conformed)
        validation.merge(self.validator.validate(landed.batch_id, frames, parameters))
        if not validation.passed:
            return self._quarantine(landed, result, validation)
        return self._accept(landed, result, validation, conformed)

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
        folder = self.data.quarantine / batch.batch_id
        folder.mkdir(parents=True, exist_ok=True)
        for path in batch.files:
            shutil.copy2(path, folder / path.name)
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
        result.rejected_reasons = {str(k): int(v) for k, v in
                                   rejected["reason"].value_counts().items()}
        if len(rejected):
            folder = self.data.rejected / f"batch_date={partition}"
            folder.mkdir(parents=True, exist_ok=True)
            rejected.to_csv(folder / f"{batch.batch_id}.csv", index=False)
        result.warnings = [f.label for f in validation.warnings]
        docs = self.validator.build_docs(validation) if validation.warnings else None
        report_dir = self.data.reports / "batches"
        if validation.warnings:
            details = report_dir / f"{batch.batch_id}.validation.json"
            write_json_atomic(details, validation.to_json())
        result.report = str(
            write_summary(report_dir / f"{batch.batch_id}.md", result, validation, docs)
        )
        stats = _stats(conformed.tables.get("events"))
        result.validation_ids = validation.ids
        self.history.known_items |= _batch_items(conformed)
        if "events" in conformed.tables:
            self.history.seen_items |= set(conformed.tables["events"]["item_id"].astype(str))
        if stats:
            self.history.recent.setdefault(batch.source, []).append(stats)
        self._record(batch, result, stats)
        return result

    def _record(
        self, batch: BatchInput, result: BatchResult, stats: dict[str, float] | None = None
    ) -> None:
        manifest = result.to_json() | {
            "ingested_at": dt.datetime.now(dt.UTC).isoformat(),
            "files": [str(p) for p in batch.files],
            "window": [str(t) for t in batch.window] if batch.window else None,
            "stats": stats,
        }
        write_json_atomic(self.data.manifest_path(batch.content_hash), manifest)
        self._manifests[batch.content_hash] = manifest


def ingest(
    paths: Sequence[Path],
    source: str,
    settings: Settings,
    *,
    mapping: str | None = None,
    data_dir: Path | None = None,
) -> list[BatchResult]:
    """Ingest files or folders from one source into the data directory; one result per batch."""
    adapter = get_source(source, mapping)  # usage errors before anything is created
    return Ingestor(settings, data_dir).ingest(paths, adapter)


def write_reference(
    data: DataDir, source: Source, paths: Sequence[Path], pseudonymiser: Pseudonymiser
) -> None:
    """Store the reference data that comes with the batches (see ``Source.reference``)."""
    for name, payload in source.reference(paths, pseudonymiser).items():
        write_json_atomic(data.reference / f"{name}.json", payload)


def land_batch(data: DataDir, batch: BatchInput) -> BatchInput:
    """Copy the batch into ``landing/`` as received, unless it already lies there."""
    if all(data.landing in f.resolve().parents for f in batch.files):
        return batch
    target = data.landing / batch.source / batch.batch_id
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for path in batch.files:
        shutil.copy2(path, target / path.name)
        files.append(target / path.name)
    landed = BatchInput(batch.source, batch.name, tuple(files), batch.batch_date, batch.window)
    landed.__dict__["content_hash"] = batch.content_hash
    return landed


def land(settings: Settings, paths: Sequence[Path] | None = None) -> list[Path]:
    """Land the batches under ``paths`` (default: the inbox) that have no manifest yet.

    Returns the landing folders still waiting for validation, including any landed by an earlier
    run that stopped before validating, so a retried or re-run pipeline picks up where it left
    off and never lands or validates a batch twice. Needs no Great Expectations context.
    """
    data = DataDir(settings.data_dir).create()
    adapter = get_source(settings.source)
    paths = list(paths) if paths is not None else [settings.inbox]
    paths = [p for p in paths if p.exists()]
    recorded = {m["batch"] for m in data.read_manifests()}
    if paths:
        write_reference(data, adapter, paths,
                        Pseudonymiser(settings.pseudonym_key.get_secret_value()))
        for batch in adapter.discover(paths):
            if batch.batch_id not in recorded:
                land_batch(data, batch)
    folder = data.landing / adapter.name
    pending = folder.iterdir() if folder.is_dir() else []
    return sorted(p for p in pending if p.is_dir() and p.name not in recorded)


def _batch_items(conformed: Conformed) -> set[str]:
    items = conformed.tables.get("items")
    return set(items["item_id"].dropna().astype(str)) if items is not None else set()


def _stats(events: pd.DataFrame | None) -> dict[str, float] | None:
    if events is None or not len(events):
        return None

    def p99(column: str) -> float | None:
        values = events[column].dropna()
        return float(values.astype(float).quantile(0.99)) if len(values) else None

    return {"rows": float(len(events)), "price_p99": p99("unit_price"),
            "quantity_p99": p99("quantity")}


def _write_parquet(frame: pd.DataFrame, folder: Path, batch_id: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{batch_id}.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / f"{batch_id}.parquet")


__all__ = ["BatchResult", "Finding", "Ingestor", "ingest", "land"]
