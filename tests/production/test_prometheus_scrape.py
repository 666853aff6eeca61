"""Debian's Prometheus with infra/prometheus/'s config, pointed at a real running endpoint: the
target is up, a shop metric is ingested, and every alert rule evaluates on the real series."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import launch
from tests.conftest import REPO
from tests.support.endpoint import Server

PROMETHEUS = REPO / "infra" / "prometheus"
WAIT_S = 90.0


def _api(base: str, path: str, **query: str) -> Any:
    url = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def _eventually(check, what: str):
    """``check()``'s first truthy value within ``WAIT_S``; fails saying ``what`` did not happen."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    pytest.fail(f"within {WAIT_S:.0f} s: {what}")


@pytest.mark.production
def test_prometheus_scrapes_the_endpoint_and_evaluates_the_alert_rules(
    server: Server, tmp_path: Path,
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not on PATH (Debian: apt-get install prometheus)")
    assert server.call("/recommend", {"user_id": "C1", "k": 3})[0] == 200
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    written = yaml.safe_load((PROMETHEUS / "shoprec-rules.yml").read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    job["static_configs"] = [{"targets": [server.url.removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = launch.free_port()
    process = launch.spawn(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        port, tmp_path / "prometheus.log", ready="/-/ready", timeout_s=60)
    base = f"http://127.0.0.1:{port}"
    try:
        up = _eventually(lambda: [r for r in _api(base, "query", query='up{job="shoprec"}')
                                  ["result"] if r["value"][1] == "1"],
                         "the shoprec target scraped and up")
        assert up[0]["metric"]["instance"] == server.url.removeprefix("http://")
        served = _eventually(lambda: _api(base, "query", query=(
            'shoprec_requests_total{job="shoprec", route="recommend"}'))["result"],
            "shoprec_requests_total ingested")
        assert sum(float(r["value"][1]) for r in served) >= 1
        assert _api(base, "query", query="bentoml_service_request_total")["result"]

        def evaluated() -> list[dict]:
            rules = [r for g in _api(base, "rules")["groups"] for r in g["rules"]]
            return rules if all(not r["lastEvaluation"].startswith("0001")  # never evaluated
                                and r["health"] != "unknown" for r in rules) else []

        rules = _eventually(evaluated, "every rule evaluated")
        assert len(rules) == sum(len(group["rules"]) for group in written["groups"])
        assert all(r["health"] == "ok" for r in rules), rules
        firing = [r["name"] for r in rules if r.get("state") == "firing"]
        assert not firing, f"a healthy endpoint fires {firing}"
    finally:
        launch.stop(process)
