"""Every knob of a training run, in one frozen dataclass (logged whole as MLflow params)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; logged whole as MLflow params."""

    seed: int = 42
    dim: int = 64
    temperature: float = 0.2
    history_dropout: float = 0.5
    dropout: float = 0.2
    batch_size: int = 1024
    learning_rate: float = 0.003
    retrieval_epochs: int = 8
    ranking_epochs: int = 4
    patience: int = 2
    negatives: int = 4  # per positive
    # Why each default: docs/decisions.md (the measurements behind them).
    hard_share: float = 0.0  # share of negatives from retrieval's top: they are future buys
    hard_pool: int = 50
    negative_power: float = 0.0  # easy negatives ~ popularity^power: uniform
    retrieve_n: int = 200
    history_length: int = 50
    use_user_id: bool = False  # in the query tower the id memorises; histories generalise
    use_context: bool = True  # hour and weekday
    # Summary features that would take the attribution from the named preferences.
    ranker_excluded: tuple[str, ...] = ("retrieval_score", "popularity", "user_id")
    # The wide item-item part (EASE's B, models/item_item.py), off above item_item_max_items
    # (B is n x n floats); λ 0: chosen on the inner split over LAMBDA_GRID.
    item_item: bool = True
    item_item_max_items: int = 20_000
    ease_lambda: float = 0.0
    item_item_n: int = 100  # EASE's top items added to retrieval's candidates
    pool_share: float = 0.0  # negatives from EASE's pool (in-pool positives only)
    # The ranker learns on the training events' latest share (``inner_split``: time, or random
    # for data split at random) with B and the trend fitted on the rest: as it serves.
    ranker_share: float = 0.2
    # The deep part's logit weight: the one of these that scores best on validation, as served
    # (``choose_deep_weight``).
    deep_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    inner_split: str = "time"
    trend_days: int = 7
    # What the wide part reads: the whole record of distinct purchases (True) or the deep
    # part's recent window (False); the default grid trains both.
    item_item_record: bool = True

    def to_dict(self) -> dict:
        return asdict(self)
