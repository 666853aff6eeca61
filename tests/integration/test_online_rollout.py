"""A canary trained on shuffled labels is rolled back by its outcomes, end to end (issue 26).

A 7-day synthetic shop of 200 shoppers (``shoprec generate``, ``shoprec ingest``) and a copy of it
whose events' item ids are permuted among the events, each ingested into its own data directory;
one short model trained on each (in-process, as ``tests/support/champion.py`` does, since
``shoprec train``'s baselines and checks would take minutes here) and registered as versions 1
and 2 of one model. Then ``bench/online_rollout.py``'s scenario, the one ``make bench-online``
runs at scale: the real endpoint (``shoprec serve``) with version 2 in canary (half the
shoppers, A/B split), ``pipelines.steps.rollout.advance`` watching the stage while ``shoprec
simulate`` sends the shop's shoppers. No rule is told which model is worse: the endpoint's
read-out must see it in the simulated shoppers' add-to-cart rate and roll the canary back, and
nothing else (errors, latency) may be what decided. Only the read-out's floor is lowered (20
shoppers a side: the shop has 200); outcome and margin are the product's defaults.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from bench.online_rollout import KEY, run_scenario, shuffle_events
from contracts import registry
from contracts.model_info import PROBE_USER_TAG
from contracts.pyfunc import log_pyfunc
from contracts.settings import Settings
from models.train_config import TrainConfig

SHOPREC = str(Path(sys.executable).with_name("shoprec"))  # beside the Python running the tests
USERS = 200
SHORT = replace(TrainConfig(), retrieval_epochs=2, ranking_epochs=1)


def _shoprec(*args: str, work: Path) -> None:
    env = os.environ | {"SHOPREC_PSEUDONYM_KEY": KEY}
    done = subprocess.run([SHOPREC, *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def _train(data: Path) -> str:
    """A short model on the data directory's curated events, logged and registered like a
    candidate (no alias); its version."""
    from contracts.bundle import save_bundle
    from models.fit import fit_two_stage
    from pipelines.data.features import build_features, load_positive_events
    from pipelines.steps.candidate import recommender_for
    from pipelines.tracking import runs as tracking

    settings = Settings(data_dir=data, pseudonym_key=KEY,
                        tracking_uri=f"sqlite:///{data.parent / 'mlflow.db'}")
    events, items, users = load_positive_events(data)
    features = build_features(events, items, users, history_length=SHORT.history_length)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, SHORT)
    recommender = recommender_for(features, fitted, SHORT)
    registry.configure(settings)
    tags = {"data_hash": data.name, PROBE_USER_TAG: recommender.known_users[0]}
    with tracking.start_run("online-rollout-test", "tfrs", tags), \
            tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp) / "bundle", features.spec, SHORT.to_dict(),
                             features.table, items, recommender.histories, recommender.purchased,
                             fitted.retrieval, fitted.ranker)
        info = log_pyfunc(bundle)
    return str(mlflow.register_model(info.model_uri, settings.model_name).version)


@pytest.mark.long
def test_a_canary_trained_on_shuffled_labels_is_rolled_back_by_its_outcomes(
    tmp_path: Path,
) -> None:
    work = tmp_path
    _shoprec("generate", "--out", str(work / "raw"), "--days", "7", "--seed", "3", "--users",
             str(USERS), "--items", "100", work=work)
    shuffle_events(work / "raw", work / "raw-shuffled", 1.0, seed=3)
    models = {}
    for name, raw in (("good", work / "raw"), ("shuffled", work / "raw-shuffled")):
        data = work / f"data-{name}"
        _shoprec("ingest", str(raw), "--source", "synthetic", "--data-dir", str(data), work=work)
        models[name] = {"version": _train(data), "data_dir": str(data)}
    assert (models["good"]["version"], models["shuffled"]["version"]) == ("1", "2")
    options = argparse.Namespace(production_latency_rules=False, min_shoppers=20, outcome=None,
                                 wait=120.0, visits_per_shopper=1, sim_seed=0, concurrency=4)

    scenario = run_scenario(work, {"shop": {"users": USERS}, "models": models}, options,
                            "split", 0.5, "worse")

    assert scenario["verdict"] == "roll_back" and scenario["rule"] == "outcome", scenario
    assert scenario["reason"].startswith("v2 was rolled back: canary: add_to_cart rate "
                                         "difference -"), scenario["reason"]
    assert scenario["difference"]["high"] < Settings().rollout.outcome_margin
    rates = scenario["rates"]
    assert rates["candidate"]["add_to_cart"] < rates["stable"]["add_to_cart"]
    assert scenario["seconds"] is not None and scenario["seconds"] < 120
    assert scenario["exposed_shoppers"] >= 2 * 20, "the floor: 20 shoppers a side"
    assert scenario["replay"]["min_shoppers_20"]["decision"] == "roll_back", \
        "the endpoint's logs tell the same story"
    # The endpoint wrote the rollback to the registry: champion back on the good model.
    store = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert str(client.get_model_version_by_alias("shoprec", registry.CHAMPION).version) == "1"
    tags = client.get_model_version("shoprec", "2").tags
    assert tags[registry.STAGE_TAG] == registry.ROLLED_BACK
    assert "add_to_cart rate difference" in tags[registry.ROLLBACK_TAG]
