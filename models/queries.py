"""What a recommender is asked and what it answers: plain dataclasses, no TensorFlow (serving
and the answers' contract import them without the models)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from models.explain import Explanation
    from models.reasons import Said


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    max_price: float | None = None

    @property
    def active(self) -> bool:
        return self.category is not None or self.max_price is not None


@dataclass(frozen=True)
class Query:
    """One known shopper's request: top ``k`` items, optionally filtered, at moment ``when``."""

    user: str  # pseudonymised user id, as in curated data
    k: int = 10
    exclude_purchased: bool = True
    filters: Filters = field(default_factory=Filters)
    when: pd.Timestamp | None = None  # default: now


@dataclass(frozen=True)
class Ranked:
    """One query's answer: vocabulary ids and ranker scores, best first (only real items)."""

    items: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    rank: int


@dataclass(frozen=True)
class ExplainedItem:
    """One recommended item's integrated-gradients explanation, its values and its reason (in
    plain English; ``said`` holds its facts, which ``contracts.i18n`` renders per locale)."""

    explanation: Explanation
    values: dict[str, str]  # feature -> the value a shopper reads (``feature_values``)
    reason: str
    said: Said = ()
