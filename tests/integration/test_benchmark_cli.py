"""`shoprec benchmark --protocol random --data-dir DIR` on an ingested shop: the fixed protocol on
any data, printing the built-in data sets' JSON shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.settings import Settings

SHOPREC = str(Path(sys.executable).with_name("shoprec"))  # beside the Python running the tests


@pytest.mark.slow
def test_random_protocol_on_an_ingested_shop(tmp_path) -> None:
    env = os.environ | {"SHOPREC_PSEUDONYM_KEY": "bench-test-key"}
    shop, data = tmp_path / "shop", tmp_path / "data"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SHOPREC, *args], capture_output=True, text=True, env=env,
                              timeout=600, check=False)

    assert run("generate", "--out", str(shop), "--days", "14", "--users", "200", "--items",
               "120").returncode == 0
    assert run("ingest", str(shop), "--source", "synthetic", "--data-dir", str(data)
               ).returncode == 0
    result = run("benchmark", "--protocol", "random", "--data-dir", str(data), "--seed", "42",
                 "--json")

    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["protocol"] == "random" and out["users_evaluated"] > 0
    for name in ("popularity", "ease", "ease_lambda_100", "ease_lambda_500"):
        assert 0.0 <= out["baselines"][name]["ndcg@10"] <= 1.0, name
    assert 0.0 < out["model"]["ndcg@10"] <= 1.0 and out["model"]["train_seconds"] > 0
    strongest = out["baselines"][out["strongest_ease"]]["ndcg@10"]
    assert out["ratio_to_strongest_ease_ndcg@10"] == pytest.approx(
        out["model"]["ndcg@10"] / strongest)
    assert out["model"]["ndcg@10"] > out["baselines"]["popularity"]["ndcg@10"]
    # The product's grid, judged on validation as `shoprec train` judges it: the best first.
    grid = out["grid"]
    assert sorted(map(str, (g["overrides"] for g in grid))) == sorted(
        map(str, Settings().train_grid)), "every default grid entry is trained"
    assert all(grid[0]["validation"]["ndcg@10"] >= g["validation"]["ndcg@10"] for g in grid)
