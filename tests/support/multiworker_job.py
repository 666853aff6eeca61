"""One worker of the multi-worker test: train the tiny model and report what it ended with.

Run under ``infra/multiworker.py`` (which sets ``TF_CONFIG``); writes ``worker-<index>.json``
into the folder given as the only argument.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from models import distribute


def weights_digest(*models: tf.keras.Model) -> str:
    digest = hashlib.sha256()
    for model in models:
        for weight in model.get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def main(out: Path) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = distribute.strategy()  # before other TF work, as TensorFlow asks

    from models.fit import fit_two_stage
    from models.inputs import first_purchases, latest_histories
    from models.two_stage import TwoStageRecommender
    from pipelines.data.features import build_features
    from tests.support.tiny import TINY, tiny_shop

    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=4)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, TINY,
                           strategy=strategy)
    spec = features.spec
    rec = TwoStageRecommender(spec, features.table, fitted.retrieval, fitted.ranker, items,
                              latest_histories(spec, events), first_purchases(spec, events),
                              retrieve_n=5)
    # Tiny-shop user j buys only items whose number has j's parity: a random ranker matches
    # that parity about half the time. Purchases stay in: a shopper soon owns every item of
    # their parity, and what is left would all be of the other.
    lists = {u: rec.recommend(u, k=3, exclude_purchased=False)
             for u in events["user_id"].unique()}
    matches = [int(r.item_id[1:]) % 2 == int(u[2:], 16) % 2 for u, rs in lists.items() for r in rs]
    report = {
        "chief": distribute.is_chief(),
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "digest": weights_digest(fitted.retrieval, fitted.ranker),
        "history": fitted.history,
        "recommended": [(r.rank, r.item_id, r.score) for r in next(iter(lists.values()))],
        "parity_share": float(np.mean(matches)),
    }
    index = distribute.tf_config().get("task", {}).get("index", 0)
    (out / f"worker-{index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
