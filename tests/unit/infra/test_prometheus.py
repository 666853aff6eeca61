"""The Prometheus files in infra/prometheus/ as promtool reads them: a valid config, valid rules,
and each alert firing on the series it is meant for (shoprec-rules.test.yml)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

PROMETHEUS = REPO / "infra" / "prometheus"


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    run = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def test_the_scrape_config_is_valid_and_loads_the_rules() -> None:
    assert "1 rule files found" in _promtool("check", "config", "prometheus.yml")


def test_the_alert_rules_are_valid() -> None:
    assert "SUCCESS" in _promtool("check", "rules", "shoprec-rules.yml")


def test_each_alert_fires_on_its_series_and_only_then() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "shoprec-rules.test.yml")


def test_every_metric_the_rules_read_is_one_the_endpoint_exposes() -> None:
    """A renamed metric would leave its alert silent forever: each ``shoprec_*`` name in the
    rules is a metric of ``serving.metrics`` (BentoML's own are ``bentoml_service_*``)."""
    from prometheus_client import REGISTRY

    import serving.metrics  # noqa: F401  (registers the shop metrics)

    exposed = {family.name for family in REGISTRY.collect() if family.name.startswith("shoprec_")}
    rules = (PROMETHEUS / "shoprec-rules.yml").read_text(encoding="utf-8")
    read = {re.sub(r"_(bucket|count|sum)$", "", name)
            for name in re.findall(r"\b(shoprec_[a-z_]+)", rules)}
    assert read, "the rules read shop metrics"
    missing = {name for name in read if re.sub(r"_total$", "", name) not in exposed}
    assert not missing, missing
