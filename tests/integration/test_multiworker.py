"""Two local workers train the tiny model with MultiWorkerMirroredStrategy, in sync.

The workers (``multiworker_job.py``) run as separate CPU-only processes under
``infra/multiworker.py``, which hands each a ``TF_CONFIG`` on free 127.0.0.1 ports.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

ROOT = REPO
sys.path.insert(0, str(ROOT / "infra"))

import multiworker  # noqa: E402  (lives in infra/, put on the path above)


def _can_bind_localhost() -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
        return True
    except OSError:
        return False


def test_tf_configs_name_one_cluster_and_each_worker() -> None:
    configs = [json.loads(c) for c in multiworker.tf_configs(3)]

    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)
    assert len(set(configs[0]["cluster"]["worker"])) == 3


def test_chief_and_cluster_size_follow_tf_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from models import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief() and distribute.cluster_size() == 1
    assert not distribute.is_distributed(distribute.strategy())
    configs = multiworker.tf_configs(2)
    monkeypatch.setenv("TF_CONFIG", configs[1])
    assert not distribute.is_chief() and distribute.cluster_size() == 2
    monkeypatch.setenv("TF_CONFIG", configs[0])
    assert distribute.is_chief()
    assert not distribute.is_distributed(distribute.strategy("none")), "the switch wins"
    monkeypatch.setenv("TF_CONFIG", configs[1])
    assert distribute.is_chief(distribute.strategy("none")), "one process is its own chief"


@pytest.mark.skipif(not _can_bind_localhost(), reason="cannot bind 127.0.0.1 ports here")
def test_two_workers_train_one_model_in_sync(tmp_path: Path) -> None:
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT),
                        "TF_CPP_MIN_LOG_LEVEL": "2"}
    job = [sys.executable, str(ROOT / "tests" / "support" / "multiworker_job.py"), str(tmp_path)]

    codes = multiworker.run(job, workers=2, env=env, timeout=150)

    assert codes == [0, 0], "both workers finish"
    chief, other = (json.loads((tmp_path / f"worker-{i}.json").read_text()) for i in (0, 1))
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["strategy"] == other["strategy"] == "CollectiveAllReduceStrategy"
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["digest"] == other["digest"], "one model: identical weights on both workers"
    assert chief["history"] == other["history"], "same (all-reduced) figures, same early stopping"
    ranking = chief["history"]["ranking"][-1]
    assert 0.5 < ranking["val_auc"] <= 1.0, "the ranker beats chance, and AUC is not summed"
    recommended = chief["recommended"]
    assert [r[0] for r in recommended] == [1, 2, 3]
    assert [r[2] for r in recommended] == sorted((r[2] for r in recommended), reverse=True)
    # Random would match the planted parity half the time; one process trains to 1.0.
    assert chief["parity_share"] >= 0.9
