"""Keyed pseudonymisation of customer identifiers.

A keyed hash (HMAC-SHA256) instead of a plain hash: customer IDs are short and guessable, so an
unkeyed hash could be reversed by enumeration. The same key maps the same customer to the same
pseudonym across batches and at serving time, so histories still join up.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

PREFIX = "u_"
PSEUDONYM_PATTERN = r"^u_[0-9a-f]{16}$"


class Pseudonymiser:
    """Maps raw customer identifiers to stable pseudonyms ``u_<16 hex>``."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the pseudonymisation key must not be empty")
        self._key = key.encode("utf-8")

    def one(self, raw_id: str) -> str:
        digest = hmac.new(self._key, str(raw_id).strip().encode("utf-8"), hashlib.sha256)
        return PREFIX + digest.hexdigest()[:16]

    def series(self, raw_ids: pd.Series) -> pd.Series:
        """Pseudonymise a column, hashing each distinct value once; missing values stay missing."""
        values = raw_ids.astype("string")
        distinct = values.dropna().unique()
        mapping = {raw: self.one(raw) for raw in distinct}
        return values.map(mapping).astype("string")
