"""Stage one trained once per feature set and retrieval config, shared by the grid's candidates.

The default grid's candidates differ only in the ranker (what its wide part reads, or whether it
has one), so training retrieval for each would repeat the same work. The first candidate saves
its trained retrieval model under the feature set (``retrieval/<key>/``); the others load it, so
every candidate of a run also ranks on exactly the same stage one. The key hashes the config's
``RETRIEVAL_FIELDS`` and the source of the modules that define and train retrieval, so a code
change never reuses stale weights. Locally a file lock makes a concurrent candidate (the DAG's
mapped tasks) wait for the one training; on an object store each trains what it does not find
and uploads it. Under multi-worker training every candidate trains its own (the workers must
train in step, and a saved model is not shared across them).

The wide part's constants (EASE's B and the trend, ``WideConstants``) are shared the same way
within one process (``shared_wide``: the CLI's candidates run one after another); they are
quick to refit, so a candidate in another process fits its own.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from filelock import FileLock

from contracts.bundle import RETRIEVAL, RETRIEVAL_DONE, load_retrieval, save_retrieval
from contracts.storage import is_remote, local_copy, put
from models import distribute
from models.fit import (
    FittedRetrieval,
    WideConstants,
    fit_retrieval,
    fit_wide_constants,
    retrieval_key,
    uses_item_item,
    wide_key,
)
from models.train_config import TrainConfig
from pipelines.data.features import FeatureSet, features_path

log = logging.getLogger(__name__)
FOLDER = "retrieval"
# The modules whose source defines stage one and its training: part of the key.
CODE = ("models.feature_spec", "models.fit", "models.inputs", "models.retrieval", "models.towers",
        "models.train_config", "models.training_data")


def shared_retrieval(features_uri: str, features: FeatureSet, config: TrainConfig, strategy,
                     on_epoch: Callable | None = None) -> FittedRetrieval:
    """Stage one for ``config`` on this feature set: loaded when a candidate saved it, else
    trained (and saved). ``on_epoch`` sees the epochs either way, so every candidate's run
    carries the retrieval curve."""
    strategy = strategy or distribute.strategy()
    fit = partial(fit_retrieval, features.spec, features.table, features.train, features.valid,
                  config, on_epoch, strategy, features.shoppers)
    if distribute.is_distributed(strategy):
        return fit()
    folder = features_path(features_uri) / FOLDER / cache_key(config)
    if is_remote(folder):
        return _load(folder, features, config, on_epoch) or _trained(fit, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        return _load(folder, features, config, on_epoch) or _trained(fit, folder)


_WIDE: dict[str, tuple[str, WideConstants]] = {}  # the latest: feature set + key -> constants


def shared_wide(features_uri: str, features: FeatureSet, config: TrainConfig
                ) -> WideConstants | None:
    """The wide part's constants for ``config`` on this feature set, fitted once per process
    (the latest kept); None when the config has no wide part."""
    if not uses_item_item(features.spec, config):
        return None
    key = json.dumps([features_uri, wide_key(config)], sort_keys=True)
    held = _WIDE.get("latest")
    if held is None or held[0] != key:
        _WIDE["latest"] = held = (key, fit_wide_constants(features.spec, features.train, config))
    return held[1]


def cache_key(config: TrainConfig) -> str:
    """The config's retrieval fields and the source of ``CODE``, hashed."""
    digest = hashlib.sha256(json.dumps(retrieval_key(config), sort_keys=True).encode())
    for name in CODE:
        digest.update(Path(importlib.import_module(name).__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


def _load(folder, features: FeatureSet, config: TrainConfig,
          on_epoch: Callable | None) -> FittedRetrieval | None:
    with local_copy(folder) as local:
        try:
            found = load_retrieval(local, features.spec, features.table, config,
                                   features.shoppers)
        except (OSError, ValueError) as error:  # a half-written folder: train again
            log.warning("retrieval under %s unreadable (%s): training it again", folder, error)
            return None
    if found is not None:
        log.info("retrieval reused from %s", folder)
        for epoch, metrics in enumerate(found.history):
            if on_epoch is not None:
                on_epoch("retrieval", epoch, metrics)
    return found


def _trained(fit: Callable[[], FittedRetrieval], folder) -> FittedRetrieval:
    fitted = fit()
    if is_remote(folder):
        with tempfile.TemporaryDirectory(prefix="shoprec-retrieval-") as tmp:
            save_retrieval(Path(tmp), fitted.model, fitted.history)
            for name in (RETRIEVAL, RETRIEVAL_DONE):  # the marker last: then it is complete
                put(Path(tmp) / name, folder / name)
    else:
        save_retrieval(folder, fitted.model, fitted.history)
    return fitted
