"""Rows set aside are opened in spreadsheets: cells a spreadsheet would run as a formula are
defused (OWASP CSV injection); plain numbers are left alone."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy safe to open in a spreadsheet: text cells starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return get a leading ``'`` (OWASP CSV injection), except plain numbers
    such as ``-3``, which no spreadsheet runs."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_neutralise, na_action="ignore")
    return out


def _neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value
