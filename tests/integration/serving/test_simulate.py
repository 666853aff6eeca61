"""Simulated shoppers on the real endpoint (the session's tiny champion): every visit answered,
every event accepted as feedback, the counts per served version adding up.

The shoppers are new to the endpoint (``SIM-*``, not the tiny shop's ``C0``..``C9``): their
purchases enter the online shopper store at once, and the other serving tests' known shoppers
must keep the histories they expect.
"""

from __future__ import annotations

import json
from pathlib import Path

from contracts.settings import Settings
from pipelines.simulation.driver import SimulationSpec
from pipelines.steps.simulate import simulate_shoppers
from tests.support.endpoint import KEY, Server
from tests.support.tiny import tiny_shop


def _tiny_shop_folder(folder: Path) -> Path:
    """The tiny shop's catalogue and ten planted shoppers, as ``shoprec generate`` lays out."""
    _, items, _ = tiny_shop()
    folder.mkdir(parents=True)
    items.to_csv(folder / "items.csv", index=False)
    bands = {"low": [5.0, 8.0], "mid": [8.0, 12.0], "high": [12.0, 16.0]}
    users = {f"SIM-{i}": {"category": "lighting" if i % 2 else "kitchen",
                          "brand": "Nord" if i % 3 else "", "price_band": ("low", "mid")[i % 2]}
             for i in range(10)}
    truth = {"price_bands": {"lighting": bands, "kitchen": bands}, "users": users}
    (folder / "ground_truth.json").write_text(json.dumps(truth))
    return folder


def test_simulated_shoppers_on_the_real_endpoint(server: Server, tmp_path: Path) -> None:
    shop = _tiny_shop_folder(tmp_path / "shop")
    settings = Settings(data_dir=tmp_path / "unused", pseudonym_key=KEY)
    spec = SimulationSpec(endpoint=server.url, shoppers=10, visits_per_shopper=3, seconds=120,
                          seed=1, k=5, token=server.token or "")

    result = simulate_shoppers(settings, spec, data_dir=shop)

    assert result.stopped == "done", result
    assert result.visits == 30 and result.recommend_errors == 0
    assert result.feedback_refused == 0 and result.feedback_posted > 0, result
    assert sum(c.requests for c in result.by_version.values()) == 30
    assert result.totals.impressions == sum(c.impressions for c in result.by_version.values())
    assert result.totals.views >= result.totals.carts >= result.totals.purchases
    # The endpoint's request_id comes back with each event (an endpoint without one gets the
    # events without), and each event, posted once, counts once as that answer's outcome.
    assert result.feedback_with_request_id in (0, result.feedback_posted)
    if result.feedback_with_request_id:
        assert result.feedback_counted == result.feedback_posted, result
    assert result.requests_sent == 30 + result.feedback_posted
