"""One tiny champion and one real open server per session; helpers to call it over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contracts import launch
from contracts.settings import Settings
from tests.support.champion import register_champion

KEY = "test-key"


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    token: str | None = None

    def call(self, path: str, body: Any = None, token: str | None = "default",
             method: str = "POST", raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded JSON or text); ``token="default"`` sends the server's own token."""
        token = self.token if token == "default" else token
        headers = {"Content-Type": "application/json"} | (headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text


    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """``GET /metrics`` parsed: (labels, value) of each sample, by sample name."""
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.call("/metrics", method="GET")
        assert status == 200, text
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, pseudonym_key=KEY,
                    tracking_uri=f"sqlite:///{data_dir / 'mlflow.db'}")


# Rollout thresholds the rollout tests can reach in seconds: half the shoppers in a canary, every
# request mirrored in shadow, judged after 10 calls, an outcome read-out from 2 shoppers a side
# (the tiny shop has 10); latency ratios and the timeout out of reach,
# so a model as fast as the stable one is never rolled back by a noisy p95 on a busy machine
# (tests/integration/serving/test_rollout.py tests those rules in-process).
ROLLOUT_ENV = {"SHOPREC_ROLLOUT_CANARY_SHARE": "0.5", "SHOPREC_ROLLOUT_SHADOW_SHARE": "1",
               "SHOPREC_ROLLOUT_MIN_REQUESTS": "10", "SHOPREC_ROLLOUT_MAX_P95_RATIO": "1000",
               "SHOPREC_ROLLOUT_MAX_P99_RATIO": "1000", "SHOPREC_ROLLOUT_TIMEOUT_MS": "10000",
               "SHOPREC_ROLLOUT_MIN_SHOPPERS": "2"}


def server_env(data_dir: Path, token: str | None = None) -> dict[str, str]:
    env = {"SHOPREC_PSEUDONYM_KEY": KEY,
           "SHOPREC_TRACKING_URI": f"sqlite:///{data_dir / 'mlflow.db'}",
           "SHOPREC_TRAFFIC_FLUSH_SECONDS": "0.5",  # served rows on disk at once
           "SHOPREC_SHOPPER_STORE_REFRESH_SECONDS": "1"} | ROLLOUT_ENV  # new items at once
    return env | ({"SHOPREC_API_TOKEN": token} if token else {})


def serve(data_dir: Path, token: str | None = None,
          env: dict[str, str] | None = None) -> Iterator[Server]:
    """A real endpoint on ``data_dir``; ``env`` adds to (or overrides) ``server_env``."""
    port = launch.free_port()
    process = launch.start(data_dir, port, data_dir.parent / f"serve-{port}.log",
                           server_env(data_dir, token) | (env or {}))
    try:
        yield Server(f"http://127.0.0.1:{port}", data_dir, token)
    finally:
        launch.stop(process)


def serve_own_state(champion_dir: Path, data_dir: Path) -> Iterator[Server]:
    """A real endpoint on ``champion_dir``'s registry with shop state of its own under
    ``data_dir`` (shopper store, inbox, logs), for tests that need it as trained: the shared
    ``server``'s shoppers and catalogue change as other tests send feedback and add items."""
    yield from serve(data_dir,
                     env={"SHOPREC_TRACKING_URI": f"sqlite:///{champion_dir / 'mlflow.db'}"})


@pytest.fixture(scope="session")
def champion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose registry has a tiny champion (version 1)."""
    data_dir = tmp_path_factory.mktemp("served") / "data"
    register_champion(settings_for(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def server(champion_dir: Path) -> Iterator[Server]:
    """The real endpoint without a token, serving the tiny champion."""
    yield from serve(champion_dir)
