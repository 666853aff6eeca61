"""Schemathesis against the service's own OpenAPI: no 5xx, no response off its schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.endpoint import Server

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
