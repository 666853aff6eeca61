"""Writing a batch's fate: curated parts, rejected rows, quarantine, report, and last the manifest.

Every writer here is atomic (``write_atomic``) and the manifest is written last, so a batch killed
half way has no manifest and is ingested again in full by the next run (``ingestor``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from contracts.storage import DataPath, is_remote, put, write_atomic
from pipelines.data.batch_history import BatchHistory, batch_stats
from pipelines.data.batch_result import BatchResult
from pipelines.data.quality import BatchValidator, Validation
from pipelines.data.reports import write_summary
from pipelines.data.sources.base import BatchInput, Conformed
from pipelines.data.spreadsheet_safe import neutralise_formulas
from pipelines.data.zones import DataDir, private_dir, write_json_atomic

log = logging.getLogger(__name__)

DUPLICATE_EVENT = "duplicate_event"


class BatchOutcomes:
    """The part of ``Ingestor`` that records what happened to each batch."""

    data: DataDir
    validator: BatchValidator
    history: BatchHistory
    store: Any
    _manifests: dict[str, dict[str, Any]]
    _recorded: set[str]
    _store_safely: Callable[..., None]

    def _duplicate(self, batch: BatchInput, result: BatchResult,
                   previous: dict[str, Any]) -> BatchResult:
        """The same bytes as an earlier batch: nothing added."""
        result.status = "duplicate"
        result.reason = (
            f"same content as batch {previous['batch']} ingested at "
            f"{previous['ingested_at']} ({previous['status']}); nothing added"
        )
        result.report = previous.get("report")
        if batch.batch_id not in self._recorded:  # same bytes under another name
            self._record(batch, result)
        return result

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
        self.history.add(batch.source, conformed.tables, stats)
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


def _reason_counts(rejected: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in rejected["reason"].value_counts().items()}


def _write_parquet(frame: pd.DataFrame, folder: DataPath, batch_id: str) -> None:
    private_dir(folder)
    write_atomic(folder / f"{batch_id}.parquet", lambda handle: frame.to_parquet(handle,
                                                                                index=False))
