"""``simulate_shoppers``: the endpoint and token default to the settings', the loopback check
comes before any file is read, and the sampled shoppers are the seed's."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.settings import Settings
from pipelines.data.synthetic_shop import ShopSpec, generate_shop
from pipelines.simulation.driver import NotLoopback, SimulationResult, SimulationSpec
from pipelines.steps import simulate as step


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict:
    seen: dict = {}

    def drive(shoppers, products, spec, behaviour):
        seen.update(shoppers=shoppers, products=products, spec=spec)
        return SimulationResult(spec.endpoint, spec.seed, len(shoppers), len(shoppers))

    monkeypatch.setattr(step, "drive", drive)
    return seen


def test_settings_give_the_endpoint_and_the_token(tmp_path: Path, captured: dict) -> None:
    generate_shop(tmp_path / "shop", ShopSpec(days=1, users=20, items=40))
    settings = Settings(data_dir=tmp_path / "shop", pseudonym_key="k", api_token="t0k",
                        serve={"host": "0.0.0.0", "port": 3123})

    step.simulate_shoppers(settings, SimulationSpec(shoppers=5, seed=2))

    spec = captured["spec"]
    assert spec.endpoint == "http://127.0.0.1:3123" and spec.token == "t0k"
    assert len(captured["shoppers"]) == 5 and len(captured["products"]) == 40
    again = step.simulate_shoppers(settings, SimulationSpec(shoppers=5, seed=2,
                                                            endpoint="http://localhost:1",
                                                            token="mine"))
    assert captured["spec"].token == "mine" and again.endpoint == "http://localhost:1"


def test_a_remote_endpoint_is_refused_before_the_shop_is_read(tmp_path: Path,
                                                              captured: dict) -> None:
    settings = Settings(data_dir=tmp_path / "absent", pseudonym_key="k")
    with pytest.raises(NotLoopback):
        step.simulate_shoppers(settings, SimulationSpec(endpoint="http://192.0.2.1:3000"))
    assert not captured and not (tmp_path / "absent").exists()
