"""The features stage: the curated zone -> one feature set per data version, by URI."""

from __future__ import annotations

import logging

from contracts.settings import Settings
from models.train_config import TrainConfig
from pipelines.data.features import (
    BATCHES,
    SPLIT_RULE,
    build_features,
    load_positive_events,
    save_features,
)
from pipelines.data.zones import DataDir, write_json_atomic
from pipelines.tracking.runs import data_hash

log = logging.getLogger(__name__)


def build_features_step(settings: Settings, history_length: int | None = None) -> str:
    """Build the feature set from the curated zone and return its URI.

    The folder is named after the accepted batches' data hash, so a retry or re-run on the same
    data reuses it, and every candidate of a run trains on exactly the same split. The history
    length is ``settings.train_config``'s unless given: the features are built for it. The
    window must judge ``settings.gate.min_users`` shoppers, else it is a per-shopper holdout
    (``build_features``); the latest ``settings.gate.slice_share`` of it is the gate slice
    (``with_gate_slice``). That minimum, the share and ``SPLIT_RULE`` are in the name too.
    """
    if history_length is None:
        history_length = TrainConfig(**settings.train_config).history_length
    data = DataDir(settings.data_dir)
    batches = [m for m in data.read_manifests() if m["status"] == "accepted"]
    if not batches:
        raise ValueError(f"no accepted batches under {data.root}: ingest some first")
    version = data_hash([m["content_hash"] for m in batches])
    min_users, share = settings.gate.min_users, settings.gate.slice_share
    folder = data.features / (f"{version[:16]}-h{history_length}-u{min_users}-g{share:g}"
                              f"-s{SPLIT_RULE}")
    if (folder / BATCHES).is_file():
        log.info("features for data %s already built: %s", version[:16], folder)
        return folder.as_uri()
    events, items, users = load_positive_events(data.root)
    features = build_features(events, items, users, history_length=history_length,
                              min_users=min_users, gate_share=share)
    uri = save_features(features, folder)
    write_json_atomic(folder / BATCHES, batches)  # last: marks the feature set complete
    return uri
