"""The shop's Prometheus metrics on the real endpoint's /metrics, scraped over HTTP."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

from contracts.settings import PROJECT_ROOT
from serving import metrics  # noqa: F401  (registers the shop metrics)
from tests.support.champion import RAW_USERS
from tests.support.endpoint import Server

DASHBOARD = PROJECT_ROOT / "infra" / "grafana" / "shoprec.json"


def _value(samples, name: str, **labels: str) -> float:
    """The sample of ``name`` whose labels include ``labels`` (0 when there is none)."""
    found = [value for have, value in samples.get(name, []) if labels.items() <= have.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def test_metrics_count_requests_by_route_model_and_fallback(server: Server) -> None:
    before = server.metrics()
    calls = [("/recommend", {"user_id": RAW_USERS[2], "k": 3}),
             ("/recommend", {"user_id": RAW_USERS[2], "k": 3, "explain": False}),
             ("/recommend", {"user_id": "never-seen-shopper", "k": 3}),
             ("/similar_items", {"item_id": "I1", "k": 2}),
             ("/explain", {"user_id": RAW_USERS[2], "item_id": "I1"})]
    for path, body in calls:
        status, answer = server.call(path, body)
        assert status == 200, (path, answer)
    after = server.metrics()

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "shoprec_requests_total"
    assert grew(requests, route="recommend", model_version="1", fallback="none") == 2
    assert grew(requests, route="recommend", model_version="1", fallback="cold_start") == 1
    assert grew(requests, route="similar_items", model_version="1", fallback="none") == 1
    assert grew(requests, route="explain", model_version="1", fallback="none") == 1
    latency = "shoprec_recommend_seconds_count"
    assert grew(latency, model_version="1", explain="true") == 2, "cold start included"
    assert grew(latency, model_version="1", explain="false") == 1
    assert 0 < grew("shoprec_recommend_seconds_sum", model_version="1", explain="true") < 60
    for batcher in ("recommend", "explain"):  # the cold start never reaches the model
        assert grew("shoprec_batch_size_count", batcher=batcher, model_version="1") >= 1
        assert grew("shoprec_batch_size_sum", batcher=batcher, model_version="1") == \
            (2 if batcher == "recommend" else 1), "one request per batch, one at a time"
        assert grew("shoprec_batch_seconds_count", batcher=batcher, model_version="1") >= 1
    assert "bentoml_service_request_total" in after, "BentoML's own metrics are still there"


def test_the_grafana_dashboard_charts_only_metrics_the_endpoint_exports() -> None:
    exported = {sample for family in REGISTRY.collect() if family.name.startswith("shoprec_")
                for sample in _sample_names(family.name, family.type)}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    charted = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"shoprec_\w+", target["expr"])}
    assert charted and charted <= exported, charted - exported
    families = {name.removesuffix("_total") for name in charted}
    assert {f.name for f in REGISTRY.collect() if f.name.startswith("shoprec_")} <= {
        re.sub(r"_(bucket|sum|count)$", "", name) for name in families}, "every metric charted"


def _sample_names(name: str, kind: str) -> list[str]:
    if kind == "counter":
        return [f"{name}_total"]
    if kind == "histogram":
        return [f"{name}_{suffix}" for suffix in ("bucket", "sum", "count")]
    return [name]
