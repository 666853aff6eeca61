"""Bootstrap intervals over shoppers: how far a mean could move with another sample of them.

One resampling of the shoppers (a counts matrix, resamples x shoppers) is drawn once with a fixed
seed and applied to every per-shopper vector as one matrix product, so every metric, model and
paired difference of an evaluation is judged on the same resamples, reproducibly. Pairing (the
difference of two models' values for the same shopper, then resampled) removes the spread that
both models share: which shoppers happened to be in the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile bootstrap interval (``LEVEL``)."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, Any]:
        """``{"value": v, "ci95": [lo, hi]}``; ``None`` for both without shoppers (no NaN in
        JSON)."""
        if np.isnan(self.value):
            return {"value": None, "ci95": None}
        return {"value": self.value, "ci95": [self.low, self.high]}


class Resamples:
    """``RESAMPLES`` draws with replacement of ``n`` shoppers, as counts per shopper."""

    def __init__(self, n: int, resamples: int = RESAMPLES, seed: int = SEED) -> None:
        self.n = n
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, max(n, 1), size=(resamples, n))
        offsets = np.arange(resamples)[:, None] * max(n, 1)
        self.counts = np.bincount((draws + offsets).ravel(), minlength=resamples * max(n, 1)
                                  ).reshape(resamples, max(n, 1))[:, :n].astype(np.float64)

    def means(self, values: np.ndarray) -> np.ndarray:
        """The mean of ``values`` (one per shopper) in every resample."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.n,):
            raise ValueError(f"{values.shape[0]} values for {self.n} resampled shoppers")
        return self.counts @ values / self.n

    def interval(self, values: np.ndarray) -> Interval:
        """Point mean and percentile interval; NaN bounds when there are no shoppers."""
        values = np.asarray(values, dtype=np.float64)
        if self.n == 0:
            return Interval(float("nan"), float("nan"), float("nan"))
        tail = (1 - LEVEL) / 2 * 100
        low, high = np.percentile(self.means(values), [tail, 100 - tail])
        point = float(values.mean())
        # Percentiles of floating-point means can miss an all-equal point by an ulp.
        return Interval(point, min(float(low), point), max(float(high), point))

    def paired(self, a: np.ndarray, b: np.ndarray) -> Interval:
        """``a - b`` for the same shoppers: the mean difference and its interval."""
        return self.interval(np.asarray(a, np.float64) - np.asarray(b, np.float64))
