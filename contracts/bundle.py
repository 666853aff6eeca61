"""Saving and loading the two-stage model bundle: the only place its files are read or written.

A bundle is a folder: the feature spec and training config as JSON, the item and shopper tables
and user histories as NumPy archives, the catalogue snapshot as Parquet and both models'
weights. The MLflow pyfunc, the benchmark and the BentoML service all load it through
``load_bundle``, which reads only JSON, Parquet, NumPy archives (``allow_pickle=False``) and
HDF5 weights: loading a bundle never runs code that came with it.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from models.feature_spec import FeatureSpec
from models.inputs import ItemTable, ShopperTable

SPEC, CONFIG, TABLE, CATALOGUE, USERS, SHOPPERS = (
    "spec.json", "config.json", "item_table.npz", "catalogue.parquet", "users.npz",
    "shopper_table.npz",
)
RETRIEVAL, RANKING = "retrieval.weights.h5", "ranking.weights.h5"
RETRIEVAL_DONE = "retrieval.json"  # stage one saved alone: its history, written last
_T = TypeVar("_T")


def save_bundle(
    folder: Path,
    spec: FeatureSpec,
    config: dict,
    table: ItemTable,
    catalogue: pd.DataFrame,
    histories: dict[str, np.ndarray],
    purchased: dict[str, np.ndarray],
    retrieval,
    ranker,
    shoppers: ShopperTable | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC).write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    (folder / CONFIG).write_text(json.dumps(config, default=str), encoding="utf-8")
    save_arrays(folder / TABLE, table)
    save_arrays(folder / SHOPPERS, shoppers or ShopperTable.empty(spec))
    catalogue.to_parquet(folder / CATALOGUE, index=False)
    keys = sorted(histories)
    bought = [np.asarray(purchased.get(k, []), np.int32) for k in keys]
    np.savez(
        folder / USERS,
        keys=np.array(keys, dtype=str),
        histories=np.stack([histories[k] for k in keys]) if keys else np.zeros((0, 0), np.int32),
        purchased=np.concatenate(bought) if bought else np.zeros(0, np.int32),
        offsets=np.cumsum([0] + [len(b) for b in bought]),
    )
    retrieval.save_weights(str(folder / RETRIEVAL))
    ranker.save_weights(str(folder / RANKING))
    return folder


def load_bundle(folder: Path, retrieve_n: int | None = None,
                catalogue_now: pd.DataFrame | None = None):
    """Rebuild the two-stage recommender from a bundle folder (TensorFlow imported here).
    ``catalogue_now``: the shop's catalogue as it is now; its items the model never saw are
    added, recommended from their content (``inputs.with_added_items``)."""
    from models.fit import ranking_model, retrieval_model
    from models.inputs import with_added_items
    from models.train_config import TrainConfig
    from models.two_stage import TwoStageRecommender

    folder = Path(folder)
    spec = FeatureSpec.from_dict(json.loads((folder / SPEC).read_text(encoding="utf-8")))
    raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    config = TrainConfig(**{k: v for k, v in raw.items() if k in TrainConfig.__dataclass_fields__})
    table = load_arrays(folder / TABLE, ItemTable)
    catalogue = pd.read_parquet(folder / CATALOGUE)
    added: list[str] = []
    if catalogue_now is not None and len(catalogue_now):
        fresh = catalogue_now.drop_duplicates("item_id", keep="last")
        fresh = fresh[~fresh["item_id"].astype(str).isin(list(spec.items.values))]
        added = fresh["item_id"].astype(str).tolist()
        table = with_added_items(spec, table, fresh, added)
        catalogue = pd.concat([catalogue, fresh[[c for c in catalogue.columns if c in fresh]]],
                              ignore_index=True)
    with np.load(folder / USERS, allow_pickle=False) as arrays:
        keys = [str(k) for k in arrays["keys"]]
        histories = dict(zip(keys, arrays["histories"], strict=True))
        offsets, values = arrays["offsets"], arrays["purchased"]
        purchased = {k: values[offsets[i] : offsets[i + 1]] for i, k in enumerate(keys)}
    shoppers = load_arrays(folder / SHOPPERS, ShopperTable)
    retrieval = retrieval_model(spec, table, config, shoppers)
    retrieval.trainable = False
    ranker = ranking_model(spec, table, retrieval, config, shoppers)
    dummy = _dummy_batch(spec)
    retrieval.query_tower(dummy)
    retrieval.candidate_tower(dummy["item_id"])
    ranker(dummy)
    retrieval.load_weights(str(folder / RETRIEVAL))
    ranker.load_weights(str(folder / RANKING))
    return TwoStageRecommender(
        spec, table, retrieval, ranker, catalogue, histories, purchased,
        retrieve_n=retrieve_n or config.retrieve_n, item_item_n=config.item_item_n,
        added_items=added,
    )


def save_retrieval(folder: Path, retrieval, history: list[dict[str, float]]) -> None:
    """Stage one alone (weights and per-epoch figures), for other candidates of a run to
    reuse; ``retrieval.json`` is written last, so a folder without it is incomplete."""
    folder.mkdir(parents=True, exist_ok=True)
    retrieval.save_weights(str(folder / RETRIEVAL))
    (folder / RETRIEVAL_DONE).write_text(json.dumps({"history": history}), encoding="utf-8")


def load_retrieval(folder: Path, spec: FeatureSpec, table: ItemTable, config,
                   shoppers: ShopperTable | None = None):
    """Stage one saved by ``save_retrieval`` (frozen) and its history; None when incomplete."""
    from models.fit import FittedRetrieval, retrieval_model

    if not (folder / RETRIEVAL_DONE).is_file():
        return None
    history = json.loads((folder / RETRIEVAL_DONE).read_text(encoding="utf-8"))["history"]
    retrieval = retrieval_model(spec, table, config, shoppers)
    dummy = _dummy_batch(spec)
    retrieval.query_tower(dummy)
    retrieval.candidate_tower(dummy["item_id"])
    retrieval.trainable = False
    retrieval.load_weights(str(folder / RETRIEVAL))
    return FittedRetrieval(retrieval, history)


def save_arrays(path: Path, record) -> None:
    """A dataclass of NumPy arrays as one ``.npz`` archive, one array per field."""
    np.savez(path, **{f.name: getattr(record, f.name) for f in fields(record)})


def load_arrays(path: Path, cls: type[_T]) -> _T:
    with np.load(path, allow_pickle=False) as arrays:
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})


def _dummy_batch(spec: FeatureSpec) -> dict[str, np.ndarray]:
    return {
        "user_id": np.zeros(1, np.int32),
        "history": np.zeros((1, spec.history_length), np.int32),
        "hour": np.zeros(1, np.int32),
        "day_of_week": np.zeros(1, np.int32),
        "item_id": np.ones(1, np.int32),
        "purchases": np.zeros((1, 1), np.int32),
    }
