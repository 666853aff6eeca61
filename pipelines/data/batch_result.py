"""What happened to one batch: what ingestion returns, the CLI prints and reports summarise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["accepted", "quarantined", "duplicate"]


@dataclass
class BatchResult:
    """What happened to one batch; the CLI prints it as one JSON line."""

    batch: str
    source: str
    status: Status
    rows_in: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_malformed: int = 0  # rows that could not be read or parsed (see ``row_faults``)
    failed_expectations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None
    report: str | None = None
    batch_date: str | None = None
    content_hash: str = ""
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    validation_ids: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)  # source columns not kept

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
