"""Screen many batches against one suite in a single Great Expectations run.

Planning a suite run costs GX about as much as checking a small batch, so a backfill of small
batches was dominated by it. Here the frames of several batches are concatenated and each
expectation of the real suite is run once over all of them (``result_format`` ``COMPLETE``); the
``unexpected_index_list`` maps every failing row back to its batch, and each batch's verdict is
then taken with GX's own rule (``mostly`` over the batch's rows, ``_mostly_success``).

The screen only *clears* batches: a batch it does not clear is validated on its own by
``BatchValidator.validate`` (which gives the report, the Data Docs and the severity). So wherever
the combined run cannot answer exactly for one batch it answers conservatively, never clearing a
batch its own run would fail:

- a bound given by a per-batch parameter (a batch's time window, the recent price limit) is
  checked exactly by shifting each batch's values by its own bound (the sign of a difference of
  two floats is exact; times are compared in whole nanoseconds); a bound that cannot be shifted
  (text, or missing in some batches) is replaced by the tightest over the group;
- ``expect_column_values_to_be_unique`` is scoped to each batch by the batch key (each value
  paired with its batch), so the same item in two batches is not a duplicate;
- table-level checks on the columns hold for every batch (frames are combined only when their
  columns and dtypes agree); a row count is compared per batch, strictly inside its bounds;
- column map expectations are taken to judge each row alone; one comparing a row with the one
  before can only flag more at the seam between two batches;
- any other expectation (aggregates, multi-column, unknown parameters) clears no batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_PER_BATCH_UNIQUE = {"expect_column_values_to_be_unique"}
_COLUMNS_ONLY = {
    "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
    "expect_table_column_count_to_equal", "expect_table_column_count_to_be_between",
    "expect_column_to_exist",
}
_ROW_COUNT = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
_ALL_ROWS_CONSIDERED = {  # GX counts every row for these, not only the non-null ones
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
}
_BETWEEN = "expect_column_values_to_be_between"
_RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False,
                  "partial_unexpected_count": 0}


# (expectation type, its column, the configurations run for it, each batch's ``mostly``)
Check = tuple[str, str | None, list[Any], list[float | None]]


def screen_group(
    batch_definition: Any, configurations: Sequence[Any], frames: Sequence[pd.DataFrame],
    parameters: Sequence[dict[str, Any]],
) -> tuple[list[bool], str | None]:
    """Which frames pass every expectation in ``configurations`` (the suite's, unsubstituted),
    each with its own ``parameters``; and GX's id of the combined batch."""
    cleared = [True] * len(frames)
    signature = [tuple(zip(f.columns, map(str, f.dtypes), strict=True)) for f in frames]
    if len(set(signature)) != 1:
        for group in set(signature):
            members = [i for i, s in enumerate(signature) if s == group]
            verdicts, batch_id = screen_group(batch_definition, configurations,
                                              [frames[i] for i in members],
                                              [parameters[i] for i in members])
            for i, verdict in zip(members, verdicts, strict=True):
                cleared[i] = verdict
        return cleared, batch_id
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.registry import get_expectation_impl

    ends = np.cumsum([len(f) for f in frames])
    combined = pd.concat(frames, ignore_index=True)
    derived = pd.DataFrame(index=combined.index)  # columns made per batch: keyed, shifted
    plain: list[Check] = []  # run on ``combined``
    per_batch: list[Check] = []  # run on ``combined`` and ``derived``
    for config in configurations:
        kwargs = [_substituted(config.kwargs, p) for p in parameters]
        kind = config.type
        if any(k is None for k in kwargs):
            cleared = [False] * len(frames)
        elif kind in _ROW_COUNT:
            cleared = [c and _inside(len(f), k) for c, f, k in zip(cleared, frames, kwargs,
                                                                    strict=True)]
        elif kind in _COLUMNS_ONLY or issubclass(get_expectation_impl(kind), ColumnMapExpectation):
            mostly = [k.get("mostly") for k in kwargs]
            merged = _merged(kwargs)
            parts = _bounds(combined, derived, ends, kwargs, merged) if merged and kind == (
                _BETWEEN) else None
            if merged is None or (merged.get("row_condition") and (
                    kind in _PER_BATCH_UNIQUE or parts or any(mostly))):
                cleared = [False] * len(frames)
            elif kind in _PER_BATCH_UNIQUE:
                keyed = _keyed(combined, derived, ends, merged)
                per_batch.append((kind, merged["column"], [_configuration(kind, keyed)], mostly))
            elif parts:
                per_batch.append((kind, merged["column"],
                                  [_configuration(kind, k) for k in parts], mostly))
            else:
                plain.append((kind, merged.get("column"), [_configuration(kind, merged)], mostly))
        else:
            cleared = [False] * len(frames)
    if not any(cleared):
        return cleared, None
    batch_id = None
    for checks, frame in ((plain, combined), (per_batch, combined.join(derived))):
        if checks:
            batch_id, results = _run(batch_definition, [c for _, _, cs, _ in checks for c in cs],
                                     frame)
            for kind, column, configs, mostly in checks:
                mine = [results[c.meta["screen"]] for c in configs]
                cleared = _verdicts(cleared, kind, column, mostly, mine, combined, ends)
    return cleared, batch_id


def _run(batch_definition: Any, configurations: list[Any],
         frame: pd.DataFrame) -> tuple[str | None, list[Any]]:
    """GX's results for ``configurations`` on ``frame``, in their order."""
    from great_expectations.validator.v1_validator import Validator

    from pipelines.data.gx_configurations import configurations_built_once

    validator = Validator(batch_definition=batch_definition, batch_parameters={"dataframe": frame},
                          result_format=_RESULT_FORMAT)
    for number, config in enumerate(configurations):  # GX returns results in its own order
        config.meta = {"screen": number}
    with configurations_built_once():
        results = validator._validate_expectation_configs(configurations, None)
    by_number = {r.expectation_config.meta["screen"]: r for r in results}
    return validator.active_batch_id, [by_number[n] for n in range(len(configurations))]


def _verdicts(cleared: list[bool], kind: str, column: str | None, mostly: list[float | None],
              results: list[Any], combined: pd.DataFrame, ends: np.ndarray) -> list[bool]:
    """Each batch's verdict on one expectation from the combined results of its parts (the
    rows any part flags), by GX's own rule."""
    from great_expectations.expectations.expectation import _mostly_success

    if any((r.exception_info or {}).get("raised_exception") for r in results):
        return [False] * len(cleared)
    if any("unexpected_index_list" not in (r.result or {}) for r in results):
        # a table-level check: the same for every batch
        return [c and all(bool(r.success) for r in results) for c in cleared]
    rows = np.unique(np.concatenate([np.asarray(r.result["unexpected_index_list"] or [],
                                                dtype=np.int64) for r in results]))
    unexpected = np.bincount(np.searchsorted(ends, rows, side="right"), minlength=len(ends))
    starts = np.concatenate([[0], ends[:-1]])
    nulls = combined[column].isna().to_numpy()
    verdicts = []
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        considered = (end - start) if kind in _ALL_ROWS_CONSIDERED else int(
            (~nulls[start:end]).sum())
        passed = unexpected[i] == 0 or (mostly[i] is not None and considered > 0 and
                                        _mostly_success(considered, unexpected[i], mostly[i]))
        verdicts.append(cleared[i] and bool(passed))
    return verdicts


def _substituted(kwargs: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any] | None:
    """``kwargs`` with each ``{"$PARAMETER": name}`` replaced by its value; None when a name is
    not a plain parameter here (GX would evaluate it: left to the batch's own run)."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
            if value["$PARAMETER"] not in parameters:
                return None
            value = parameters[value["$PARAMETER"]]
        out[key] = value
    return out


def _merged(kwargs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One set of arguments for the whole group: equal ones kept, per-batch bounds tightened,
    ``mostly`` left out (judged per batch); None when they differ otherwise."""
    first = kwargs[0]
    merged = {k: v for k, v in first.items() if k != "mostly"}
    for key in ("min_value", "max_value"):
        values = [k.get(key) for k in kwargs if k.get(key) is not None]
        if values and not all(_same(v, values[0]) for v in values):
            merged[key] = (max if key == "min_value" else min)(values)
        elif values:
            merged[key] = values[0]
    for other in kwargs[1:]:
        if set(other) != set(first) or any(
                not _same(other[k], first[k]) for k in first
                if k not in ("mostly", "min_value", "max_value")):
            return None
    return merged


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _inside(count: int, kwargs: dict[str, Any]) -> bool:
    """A batch's row count strictly inside its bounds (on a bound, its own run decides)."""
    if "value" in kwargs:
        return count == kwargs["value"]
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    return (low is None or count > low) and (high is None or count < high)


def _keyed(combined: pd.DataFrame, derived: pd.DataFrame, ends: np.ndarray,
           kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check uniqueness on a column of (batch, value) pairs, so that a value is a duplicate only
    within its batch; nulls stay null."""
    values = combined[kwargs["column"]]
    batch = np.searchsorted(ends, np.arange(len(combined)), side="right").tolist()
    pairs = pd.Series(list(zip(batch, values.astype(object), strict=True)), dtype=object)
    name = f"__keyed__{kwargs['column']}"
    derived[name] = pairs.where(values.notna().to_numpy(), None)
    return kwargs | {"column": name}


def _bounds(combined: pd.DataFrame, derived: pd.DataFrame, ends: np.ndarray,
            kwargs: list[dict[str, Any]], merged: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Per-batch bounds of a ``between`` made one: for each bound that differs between batches,
    each batch's values less its own bound, checked against zero (the sign of a difference is
    exact for floats, and times are compared in whole nanoseconds); the bounds all batches share
    stay on the column itself. None when no bound differs or one cannot be shifted."""
    column = combined[merged["column"]]
    batch = np.searchsorted(ends, np.arange(len(combined)), side="right")
    parts, kept = [], dict(merged)
    for side, strict in (("min_value", "strict_min"), ("max_value", "strict_max")):
        bounds = [k.get(side) for k in kwargs]
        if all(_same(b, bounds[0]) for b in bounds):
            continue
        shifted = _shifted(column, bounds, batch)
        if shifted is None:
            return None
        name = f"__{side}__{merged['column']}"
        derived[name] = shifted
        kept.pop(side, None)
        parts.append({"column": name, side: 0, strict: bool(merged.get(strict, False))}
                     | {k: v for k, v in merged.items() if k not in (
                         "column", "min_value", "max_value", "strict_min", "strict_max")})
    if not parts:
        return None
    return parts + ([kept] if "min_value" in kept or "max_value" in kept else [])


def _shifted(column: pd.Series, bounds: list[Any], batch: np.ndarray) -> pd.Series | None:
    """Each row's value less its batch's bound, or None when that would not be exact."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) and all(
            isinstance(b, pd.Timestamp) and b.tzinfo is not None for b in bounds):
        offset = pd.Series(pd.DatetimeIndex(bounds).take(batch), index=column.index)
        delta = (column - offset).dt.as_unit("ns")
        nanoseconds = pd.Series(delta.to_numpy().view("int64"), index=column.index)
        return nanoseconds.astype("Int64").mask(delta.isna())  # GX takes no Timedelta bounds
    numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
        column.dtype)
    if numeric and all(isinstance(b, int | float) and not isinstance(b, bool) and np.isfinite(b)
                       for b in bounds) and not (column.abs() >= 2**53).any():  # ints exact
        return column.astype("Float64") - np.asarray(bounds, dtype=float)[batch]
    return None


def _configuration(kind: str, kwargs: dict[str, Any]) -> Any:
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    return ExpectationConfiguration(type=kind, kwargs=kwargs)
