"""Simulated shoppers against the running endpoint: ``shoprec simulate`` and tests call this.

It ties the parts of ``pipelines.simulation`` together: read the synthetic shop's shoppers and
catalogue, sample ``spec.shoppers`` of them with the seed, and drive the endpoint with their
reactions. The endpoint defaults to the one the settings serve (``serve.host``/``serve.port``),
its token to ``settings.api_token``; the key matching raw ids to an ingested data directory's
planted preferences is the settings' pseudonymisation key, the one the endpoint hashes with.
"""

from __future__ import annotations

from dataclasses import replace

from contracts.settings import Settings
from contracts.storage import DataPath
from pipelines.simulation.behaviour import DEFAULT, Behaviour
from pipelines.simulation.driver import SimulationResult, SimulationSpec, require_loopback
from pipelines.simulation.driver import simulate as drive
from pipelines.simulation.shop import load_shop, sample_shoppers
from pipelines.steps.package import endpoint_url


def simulate_shoppers(settings: Settings, spec: SimulationSpec, data_dir: DataPath | None = None,
                      behaviour: Behaviour = DEFAULT) -> SimulationResult:
    """Run ``spec`` with the shop under ``data_dir`` (default the settings' data directory).

    ``spec.endpoint`` empty means the settings' endpoint; ``spec.token`` None, the settings'
    API token. The endpoint is checked to be loopback before any file is read.
    """
    endpoint = spec.endpoint or endpoint_url(settings)
    require_loopback(endpoint)
    token = spec.token
    if token is None and settings.api_token is not None:
        token = settings.api_token.get_secret_value() or None
    spec = replace(spec, endpoint=endpoint, token=token)
    key = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    shop = load_shop(data_dir if data_dir is not None else settings.data_dir, key)
    shoppers = sample_shoppers(shop.shoppers, spec.shoppers, spec.seed)
    return drive(shoppers, shop.products, spec, behaviour)
