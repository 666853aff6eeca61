"""One-page Markdown summaries of a batch's fate, for the person who has to act on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.storage import DataPath
from pipelines.data.zones import private_dir

if TYPE_CHECKING:
    from pipelines.data.batch_result import BatchResult
    from pipelines.data.quality import Finding, Validation

_NEXT_STEPS = {
    "quarantined": (
        "Nothing from this batch was loaded. Fix the export at its source and land the corrected "
        "file again (a corrected file has new content, so it is a new batch); the original stays "
        "here, untouched, for comparison."
    ),
    "accepted": "The batch was loaded. Warnings, if any, are worth a look but blocked nothing.",
    "duplicate": (
        "Nothing from this batch was loaded: every event in it was already curated. Nothing to "
        "do unless the export was meant to carry new events."
    ),
}


def write_summary(
    path: DataPath, result: BatchResult, validation: Validation, data_docs: DataPath | None
) -> DataPath:
    lines = [
        f"# Batch `{result.batch}`: {result.status.upper()}",
        "",
        f"- source: `{result.source}`; batch date: {result.batch_date or 'n/a'}",
        f"- content hash: `{result.content_hash}`",
        f"- rows in: {result.rows_in}; accepted: {result.rows_accepted}; "
        f"rejected: {result.rows_rejected}",
        f"- malformed rows (unreadable or unparseable, set aside): {result.rows_malformed}; "
        f"events already curated (set aside as `duplicate_event`): "
        f"{result.rejected_reasons.get('duplicate_event', 0)}",
    ]
    if result.reason:
        lines += ["", "## Reason", "", result.reason]
    lines += _section("Critical failures (batch quarantined)", validation.critical)
    lines += _section("Warnings (reported, batch not blocked)", validation.warnings)
    if result.rejected_reasons:
        lines += ["", "## Rejected rows by reason", "", "| reason | rows |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(result.rejected_reasons.items())]
    if result.dropped_columns:
        lines += ["", "## Columns not kept", "",
                  "Not listed under the mapping's `keep`, so dropped at ingestion: "
                  + ", ".join(f"`{c}`" for c in result.dropped_columns)]
    lines += ["", "## What next", "", _NEXT_STEPS.get(result.status, "")]
    if data_docs:
        lines += ["", f"Great Expectations Data Docs: {data_docs}"]
    private_dir(path.parent)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _section(title: str, findings: list[Finding]) -> list[str]:
    if not findings:
        return []
    return ["", f"## {title}", ""] + [f"- {f.sentence()} [`{f.expectation}`]" for f in findings]
