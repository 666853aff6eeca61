"""The row-level fault model: a malformed row is set aside, a file is quarantined only when too
many of its rows are.

A row that cannot be read (``malformed_*`` reasons from ``sources.reading``: a broken encoding,
a control byte, the wrong field count, an oversized field, broken quoting, a repeated header) or
whose values cannot be parsed (``unparseable_*`` reasons from the sources) is *malformed*. Like
BigQuery's ``max_bad_records`` or Snowflake's ``ON_ERROR = CONTINUE``, such rows are set aside in
``rejected/`` with their line and reason and the rest is validated as usual, unless their share
of the file's rows passes ``Settings.max_bad_row_share`` (default 1 %): then the export itself
is broken and the file is quarantined whole. A source's business rules (an Online Retail line
without a customer, a cancellation) are ordinary set-asides and never count towards the share.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from pipelines.data.sources.base import Conformed

MALFORMED_PREFIXES = ("malformed_", "unparseable_")
FAILED = "max_bad_row_share"  # the check a batch with too many malformed rows fails


def is_malformed(reasons: pd.Series) -> pd.Series:
    """Which rejection reasons say the row could not be read or parsed."""
    return reasons.astype("string").str.startswith(MALFORMED_PREFIXES).fillna(False).astype(bool)


def count_malformed(rejected: pd.DataFrame) -> int:
    return int(is_malformed(rejected["reason"]).sum()) if len(rejected) else 0


def with_malformed(conformed: Conformed, malformed: pd.DataFrame,
                   dropped: list[str]) -> Conformed:
    """The conformed batch with the rows set aside while reading added to its rejected rows and
    the columns dropped while reading added to its dropped columns."""
    rejected = conformed.rejected
    if len(malformed):
        rejected = pd.concat([malformed, rejected], ignore_index=True) if len(rejected) else (
            malformed.reset_index(drop=True))
    names = [*dropped, *(c for c in conformed.dropped_columns if c not in dropped)]
    return dataclasses.replace(conformed, rejected=rejected, dropped_columns=names)


def too_many_malformed(rejected: pd.DataFrame, rows_in: int, limit: float) -> str | None:
    """Why the file is quarantined for its malformed rows, or None when it may be loaded.

    A file whose every row is malformed is never loaded, whatever the limit: nothing in it could
    be read.
    """
    bad = rejected.loc[is_malformed(rejected["reason"])] if len(rejected) else rejected
    if not len(bad) or rows_in <= 0:
        return None
    share = len(bad) / rows_in
    if share <= limit and len(bad) < rows_in:
        return None
    details = bad["detail"] if "detail" in bad else pd.Series(pd.NA, index=bad.index)
    examples = "; ".join(
        f"line {line}: {reason}" + ("" if pd.isna(detail) else f" ({detail})")
        for reason, line, detail in zip(bad["reason"][:3], bad["_line"][:3], details[:3],
                                        strict=True))
    return (f"{len(bad)} of {rows_in} rows malformed ({share:.2%}), over the "
            f"{limit * 100:g}% limit ({FAILED}); first: {examples}")


def accepted_lines(raw: pd.DataFrame, conformed: Conformed) -> pd.Series | None:
    """The source line of each row of the primary table, so that an event set aside later (one
    already curated) keeps its line too: the raw rows the source did not reject, in order
    (``Conformed``'s contract). None when the source's rejected rows carry no line numbers."""
    rejected = conformed.rejected
    if len(rejected) and ("_line" not in rejected or rejected["_line"].isna().any()):
        return None
    kept = raw["_line"][~raw["_line"].isin(rejected["_line"] if len(rejected) else [])]
    primary = conformed.tables[conformed.primary]
    return kept.reset_index(drop=True) if len(kept) == len(primary) else None
