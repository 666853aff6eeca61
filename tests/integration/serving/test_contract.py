"""Schemathesis against the service's own OpenAPI: no 5xx, no response off its schema; and the
examples Swagger's "Try it out" starts from, answered 200 by an endpoint that has the demo's ids."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from contracts.shopper_store import SQLITE_FILE, open_store
from serving.schemas import DEMO_CATEGORY, DEMO_ITEM
from tests.support.endpoint import Server, serve_own_state

CHECKS = "not_a_server_error,response_schema_conformance"


def test_schemathesis_finds_no_server_errors_or_schema_violations(server: Server) -> None:
    """Every documented operation: coverage, fuzzing and stateful phases, fixed seed.

    Run through schemathesis' CLI (its pytest plugin does not load under pytest 9).
    """
    command = [str(Path(sys.executable).with_name("schemathesis")), "run",
               f"{server.url}/docs.json", "--checks", CHECKS, "--max-examples", "30",
               "--seed", "1", "--request-timeout", "30"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
    assert "11 selected / 11 total" in run.stdout, "every API, probes included, was tested"


def test_the_documented_apis_are_all_there(server: Server) -> None:
    status, document = server.call("/docs.json", method="GET")
    assert status == 200
    assert {"/recommend", "/explain", "/similar_items", "/history", "/feedback", "/metadata",
            "/admin/reload", "/healthz", "/readyz"} <= set(document["paths"])
    request = document["paths"]["/recommend"]["post"]["requestBody"]["content"]
    assert "RecommendRequest" in str(request)


def test_every_request_body_documents_an_example_its_schema_accepts(server: Server) -> None:
    """Swagger's "Try it out" starts from these: each must be a body the API takes."""
    from serving import schemas

    _, document = server.call("/docs.json", method="GET")
    bodies = {name: spec for name, spec in document["components"]["schemas"].items()
              if name.endswith("Request")}
    assert {"RecommendRequest", "ExplainRequest", "SimilarRequest", "HistoryRequest",
            "FeedbackRequest"} <= set(bodies)
    for name, spec in bodies.items():
        [example] = spec["examples"]
        getattr(schemas, name).model_validate(example)


@pytest.fixture(scope="module")
def demo_ids_server(champion_dir: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Server]:
    """The tiny champion served with the demo's first item added to its catalogue (as ingesting
    an items batch adds one); its own state, so the shared server's catalogue stays as trained."""
    data_dir = tmp_path_factory.mktemp("demo-ids") / "data"
    with contextlib.closing(serve_own_state(champion_dir, data_dir)) as servers:
        served = next(servers)
        store = open_store(f"sqlite:///{data_dir / 'online' / SQLITE_FILE}", limit=1000)
        store.apply("test-batch-demo-item", None, pd.DataFrame({
            "item_id": [DEMO_ITEM], "title": ["Modern Cutting Board"],
            "category": [DEMO_CATEGORY], "brand": ["Pan & Pestle"], "price": [49.14]}))
        deadline = time.monotonic() + 60
        while served.call("/similar_items", {"item_id": DEMO_ITEM})[0] != 200:
            assert time.monotonic() < deadline, "the demo item was never served"
            time.sleep(0.5)
        yield served


def test_every_request_body_example_is_answered_200(demo_ids_server: Server) -> None:
    """Each operation that takes a body documents an example, and posting it as Swagger's "Try
    it out" does gets a 200: the examples name the demo's shopper and item."""
    _, document = demo_ids_server.call("/docs.json", method="GET")
    schemas = document["components"]["schemas"]
    posted = []
    for path, operations in document["paths"].items():
        body = operations.get("post", {}).get("requestBody")
        if body is None:
            continue
        ref = body["content"]["application/json"]["schema"]["$ref"]
        [example] = schemas[ref.rsplit("/", 1)[-1]]["examples"]
        status, answer = demo_ids_server.call(path, example)
        assert status == 200, (path, example, answer)
        posted.append(path)
    assert sorted(posted) == ["/explain", "/feedback", "/history", "/recommend",
                              "/similar_items"]
