"""Rollout on the endpoint: canary routing, the rollback rules, and a broken canary under load.

The routing and threshold rules run in-process on stand-in engines (milliseconds, exact); the
real server shows a broken champion put in canary by ``pipelines.steps.rollout`` rolled back by the
endpoint itself, with the alias moved back and the reason tagged, while no client request fails.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from contracts import registry
from contracts.model_info import ModelInfo
from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from contracts.traffic import PART_GLOB
from models.queries import Filters
from pipelines.steps import rollout
from pipelines.steps.package import reload_endpoint
from serving.rollout import Rollout
from tests.support.champion import RAW_USERS, register_copy
from tests.support.endpoint import KEY, ROLLOUT_ENV, Server, serve, settings_for


@dataclass
class _Page:
    """Stands in for ``serving.engine.Page``."""

    user_id: str
    items: list[dict]
    fallback: str | None
    pseudonym: str

    def __getitem__(self, key: str):
        return {"user": self.user_id, "from": self.items[0]["from"]}[key]


@dataclass
class _Engine:
    """Stands in for ``serving.engine.Engine``: answers after ``delay`` seconds, or raises;
    its items are ``items`` (default: five of its own)."""

    version: str
    delay: float = 0.0
    fails: bool = False
    calls: list[str] = field(default_factory=list)
    items: list[str] | None = None

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name="shoprec", version=self.version, run_id=None, uri=self.version)

    async def recommend(self, user, k, explain, exclude_purchased, filters, pseudonymised):
        assert pseudonymised, "the rollout routes pseudonyms"
        self.calls.append(user)
        await asyncio.sleep(self.delay)
        if self.fails:
            raise RuntimeError("broken model")
        ids = self.items or [f"v{self.version}-{i}" for i in range(k)]
        return _Page(user, [{"item_id": item, "rank": rank, "from": self.version, "price": 2.0}
                            for rank, item in enumerate(ids[:k], start=1)], None, user)


SHOPPERS = [f"u_{i:016x}" for i in range(400)]
RULES = Settings(pseudonym_key=KEY, rollout_canary_share=0.3, rollout_shadow_share=1.0,
                 rollout_min_requests=20, rollout_timeout_ms=200.0)


def _serve(trial: Rollout, shoppers: list[str]) -> list[tuple[dict, str]]:
    async def main():
        answers = [await trial.recommend(u, 5, True, True, Filters()) for u in shoppers]
        await asyncio.sleep(0.05)  # let shadow calls finish
        return answers

    return [(served.page, served.engine.version) for served in asyncio.run(main())]


def _rollout(stable: _Engine, candidate: _Engine, stage: str, rules: Settings = RULES):
    breaches: list[str] = []
    trial = Rollout(stable, candidate, stage, rules, lambda _, reason: breaches.append(reason))
    return trial, breaches


def test_canary_routes_a_sticky_share_of_shoppers_and_names_the_model() -> None:
    patient = RULES.with_values(rollout_max_p95_ratio=1e3, rollout_max_p99_ratio=1e3)
    trial, breaches = _rollout(_Engine("1"), _Engine("2"), registry.CANARY, patient)
    first = _serve(trial, SHOPPERS)
    again = _serve(trial, SHOPPERS)
    assert [version for _, version in first] == [version for _, version in again], "sticky"
    assert all(page["from"] == version for page, version in first), "model names who answered"
    share = sum(version == "2" for _, version in first) / len(SHOPPERS)
    assert 0.22 < share < 0.38, share
    assert not breaches and trial.to_json()["candidate"]["requests"] == 2 * share * 400


def test_a_failing_canary_falls_back_to_stable_and_is_judged_on_its_error_rate() -> None:
    stable, broken = _Engine("1"), _Engine("2", fails=True)
    trial, breaches = _rollout(stable, broken, registry.CANARY)
    answers = _serve(trial, SHOPPERS)
    assert all(version == "1" and page["from"] == "1" for page, version in answers)
    assert breaches == ["error rate 100.0% over 20 calls exceeds 2.0%"], "judged once"
    assert trial.ended and trial.to_json()["candidate"]["errors"] == len(broken.calls)


def test_a_slow_canary_times_out_to_stable_and_a_slower_one_breaks_the_latency_ratio() -> None:
    timed_out, _ = _rollout(_Engine("1"), _Engine("2", delay=0.5), registry.CANARY)
    assert {v for _, v in _serve(timed_out, SHOPPERS[:20])} == {"1"}, "past the timeout"
    slower, breaches = _rollout(_Engine("1", delay=0.001), _Engine("2", delay=0.02),
                                registry.CANARY)
    _serve(slower, SHOPPERS[:200])
    assert len(breaches) == 1 and breaches[0].startswith("p95 latency"), breaches
    assert "the stable model's" in breaches[0] and "(limit 1.5x)" in breaches[0]


def test_shadow_answers_are_computed_off_the_request_and_never_returned() -> None:
    stable, shadow = _Engine("1"), _Engine("2", fails=True)
    trial, breaches = _rollout(stable, shadow, registry.SHADOW)
    answers = _serve(trial, SHOPPERS[:30])
    assert {v for _, v in answers} == {"1"} and len(stable.calls) == 30
    assert shadow.calls == SHOPPERS[:30], "share 1.0: every request mirrored"
    assert breaches and breaches[0].startswith("error rate"), "a failing shadow is rolled back"


def test_a_canary_whose_shoppers_add_less_to_cart_is_rolled_back_by_its_read_out() -> None:
    rules = RULES.with_values(rollout_min_shoppers=30, rollout_outcome_margin=-0.01,
                              rollout_max_p95_ratio=1e3, rollout_max_p99_ratio=1e3)
    trial, breaches = _rollout(_Engine("1"), _Engine("2"), registry.CANARY, rules)

    async def shop() -> None:
        for round_ in range(6):
            for user in SHOPPERS:
                served = await trial.recommend(user, 3, False, True, Filters())
                trial.shown(user, served)
                version = served.engine.version
                if round_ % 2 == 0 and (version == "1" or round_ == 0):  # canary: a third
                    trial.outcome(user, version, "add_to_cart", None)

    asyncio.run(shop())
    assert len(breaches) == 1 and trial.ended, breaches
    assert breaches[0].startswith("add_to_cart rate difference -"), breaches[0]
    assert "is below the margin -0.0100" in breaches[0]
    found = trial.to_json()["readout"]
    assert found["decision"] == "roll_back" and found["mode"] == "split"
    assert found["stable"]["shoppers"] + found["candidate"]["shoppers"] == len(SHOPPERS)


def test_an_interleaved_canary_shows_one_list_credited_item_by_item() -> None:
    rules = RULES.with_values(rollout_canary_mode="interleave", rollout_min_shoppers=20,
                              rollout_max_p95_ratio=1e3, rollout_max_p99_ratio=1e3)
    stable = _Engine("1", items=["A", "B", "C", "D"])
    candidate = _Engine("2", items=["X", "A", "Y", "Z"])
    trial, breaches = _rollout(stable, candidate, registry.CANARY, rules)

    async def shop() -> list:
        answers = []
        for user in SHOPPERS:
            served = await trial.recommend(user, 4, False, True, Filters(), f"r-{user}")
            trial.shown(user, served)
            answers.append((user, served))
            for item, version in zip([i["item_id"] for i in served.page.items],
                                     served.credited or (), strict=False):
                if item in ("X", "Y"):  # shoppers prefer what the candidate placed
                    trial.outcome(user, version, "add_to_cart", None)
        return answers

    answers = asyncio.run(shop())
    mixed = [(u, s) for u, s in answers if s.credited is not None]
    assert mixed and all(trial.serves_candidate(u) for u, _ in mixed)
    for _, served in mixed:
        items = [i["item_id"] for i in served.page.items]
        assert len(items) == 4 and len(set(items)) == 4
        assert [i["rank"] for i in served.page.items] == [1, 2, 3, 4]
        assert {v for v in served.credited} == {"1", "2"} and served.in_readout
        assert all(i["from"] == v for i, v in zip(served.page.items, served.credited,
                                                  strict=True)), "each item from its model"
    again = asyncio.run(trial.recommend(mixed[0][0], 4, False, True, Filters(),
                                        f"r-{mixed[0][0]}"))
    assert again.page.items == mixed[0][1].page.items, "the request id seeds the draw"
    found = trial.to_json()["readout"]
    assert found["mode"] == "interleave" and found["shoppers"] == len(mixed)
    assert found["stable"]["outcomes"]["add_to_cart"] == 0
    assert found["candidate_share"]["estimate"] == 1.0
    assert found["decision"] == "pass" and not breaches
    plain = [s for u, s in answers if not trial.serves_candidate(u)]
    assert plain and all(s.engine.version == "1" and not s.in_readout for s in plain), \
        "the other shoppers get the stable list, outside the interleaved read-out"


def test_a_first_champion_is_marked_stable_and_then_has_nothing_to_roll_out(
    settings: Settings, mlflow_server: str,
) -> None:
    """No endpoint needed: nothing is on trial, so nothing is asked of it."""
    settings = settings.with_values(tracking_uri=mlflow_server, model_name="rollout-first-champion")
    registry.configure(settings)
    client = MlflowClient()
    client.create_registered_model(settings.model_name)
    version = client.create_model_version(settings.model_name, "s3://nowhere/model").version
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, version)
    first = rollout.advance(settings, registry.SHADOW)
    assert first.stage == "full" and "first champion" in first.reason
    assert registry.rollout_plan(settings.model_name) == registry.RolloutPlan("1", "1")
    for stage in (registry.CANARY, registry.FULL):
        assert "nothing to roll out" in rollout.advance(settings, stage).reason
    with pytest.raises(LookupError, match="nothing on trial"):
        rollout.roll_back(settings, "no reason")


# ---- the real endpoint ------------------------------------------------------------------------
def _endpoint_settings(server: Server) -> Settings:
    return settings_for(server.data_dir).with_values(
        serve_port=int(server.url.rsplit(":", 1)[1]),
        rollout_min_requests=int(ROLLOUT_ENV["SHOPREC_ROLLOUT_MIN_REQUESTS"]),
        rollout_min_shoppers=int(ROLLOUT_ENV["SHOPREC_ROLLOUT_MIN_SHOPPERS"]))


def _sample(scraped, name: str, **labels: str) -> float:
    [value] = [value for have, value in scraped[name] if have == labels]
    return value


def _on_trial(settings: Settings, version: str) -> None:
    """Version 1 stable, ``version`` champion: on trial from the next reload."""
    registry.configure(settings)
    registry.mark_stable(settings.model_name, "1")
    MlflowClient().set_registered_model_alias(settings.model_name, registry.CHAMPION, version)


def _restore(settings: Settings) -> None:
    """Version 1 alone again, as the other serving tests expect."""
    registry.mark_stable(settings.model_name, "1")
    MlflowClient().set_registered_model_alias(settings.model_name, registry.CHAMPION, "1")
    reload_endpoint(settings)


def test_canary_on_the_endpoint_is_sticky_per_shopper(server: Server) -> None:
    settings = _endpoint_settings(server)
    candidate = register_copy(settings, "1")
    _on_trial(settings, candidate)
    try:
        registry.set_stage(settings.model_name, candidate, registry.CANARY)
        assert reload_endpoint(settings)["rollout"]["stage"] == "canary"
        pseudonymiser = Pseudonymiser(KEY)
        for raw in RAW_USERS:
            expected = candidate if zlib.crc32(pseudonymiser.one(raw).encode()) < 0.5 * 2**32 \
                else "1"
            for _ in range(2):
                status, answer = server.call("/recommend", {"user_id": raw, "k": 3})
                assert status == 200 and answer["model"]["version"] == expected, (raw, answer)
        status, meta = server.call("/metadata", method="GET")
        split = meta["rollout"]
        assert status == 200 and split["stage"] == "canary" and split["share"] == 0.5
        assert split["stable"]["version"] == "1" and split["candidate"]["version"] == candidate
        assert split["stable"]["requests"] + split["candidate"]["requests"] == 2 * len(RAW_USERS)
        assert split["candidate"]["errors"] == 0
        scraped = server.metrics()
        assert _sample(scraped, "shoprec_rollout_share", stage="canary") == 0.5
        for side in ("stable", "candidate"):
            labels = {"model_version": split[side]["version"], "outcome": "ok",
                      "role": "stable" if side == "stable" else "canary"}
            assert _sample(scraped, "shoprec_rollout_requests_total", **labels) == \
                split[side]["requests"], "the canary split on /metrics"
    finally:
        _restore(settings)
    assert server.call("/metadata", method="GET")[1]["rollout"] is None


def test_a_broken_canary_is_rolled_back_under_load_and_no_request_fails(server: Server) -> None:
    settings = _endpoint_settings(server)
    broken = register_copy(settings, "1", broken=True)
    _on_trial(settings, broken)
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def shop(offset: int) -> None:
        while not stop.is_set():
            for raw in RAW_USERS[offset:] + RAW_USERS[:offset]:
                status, body = server.call("/recommend", {"user_id": raw, "k": 3})
                seen.append((status, body.get("model", {}).get("version")
                             if isinstance(body, dict) else None))

    shoppers = [threading.Thread(target=shop, args=(i,)) for i in range(4)]
    for thread in shoppers:
        thread.start()
    try:
        with pytest.raises(rollout.RolledBack, match="error rate") as caught:
            rollout.advance(settings, registry.CANARY, wait_s=60,
                            sleep=lambda seconds: time.sleep(min(seconds, 0.2)))
        time.sleep(0.5)  # requests keep flowing after the rollback
    finally:
        stop.set()
        for thread in shoppers:
            thread.join()
    try:
        assert f"v{broken} was rolled back: canary: error rate" in str(caught.value)
        assert seen and all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200]
        assert {version for _, version in seen} <= {"1", broken}
        for _ in range(50):  # the endpoint writes the registry off its event loop
            if registry.rollout_plan(settings.model_name).champion == "1":
                break
            time.sleep(0.1)
        assert registry.rollout_plan(settings.model_name) == registry.RolloutPlan("1", "1")
        tags = MlflowClient().get_model_version(settings.model_name, broken).tags
        assert tags[registry.STAGE_TAG] == registry.ROLLED_BACK
        assert tags[registry.ROLLBACK_TAG].startswith("canary: error rate")
        meta = server.call("/metadata", method="GET")[1]
        assert meta["rollout"] is None and meta["version"] == "1"
        event = meta["rollbacks"][0]
        assert event["version"] == broken and event["stable_version"] == "1"
        assert event["figures"]["candidate"]["errors"] >= 1
        scraped = server.metrics()
        assert _sample(scraped, "shoprec_rollbacks_total", model_version=broken) == 1
        assert _sample(scraped, "shoprec_rollout_share", stage="canary") == 0
        assert reload_endpoint(settings)["rollout"] is None, "the registry no longer has a trial"
    finally:
        _restore(settings)


# Shoppers new to the tiny shop: their carts change the shared endpoint's live store, which must
# stay as the tiny shop left it for the other modules' shoppers (C0..C9: `test_score`).
OUTSIDERS = [f"CANARY-{i}" for i in range(10)]


def test_a_canary_whose_shoppers_buy_more_passes_on_its_read_out(server: Server) -> None:
    """Shoppers add to cart from the candidate's answers only: the endpoint's read-out passes
    it before the stage ends, the pipeline logs that read-out to MLflow on the version, and the
    read-out from the endpoint's logs says the same as the endpoint."""
    settings = _endpoint_settings(server)
    candidate = register_copy(settings, "1")
    _on_trial(settings, candidate)
    stop = threading.Event()

    def shop() -> None:
        while not stop.is_set():
            for raw in OUTSIDERS:
                status, answer = server.call("/recommend", {"user_id": raw, "k": 3,
                                                            "explain": False})
                assert status == 200, answer
                if answer["model"]["version"] == candidate:
                    server.call("/feedback", {"user_id": raw, "event_type": "add_to_cart",
                                              "item_id": answer["items"][0]["item_id"],
                                              "request_id": answer["request_id"]})

    shopper = threading.Thread(target=shop)
    shopper.start()
    try:
        started = time.monotonic()
        result = rollout.advance(settings, registry.CANARY, wait_s=120,
                                 sleep=lambda seconds: time.sleep(min(seconds, 0.2)))
        assert time.monotonic() - started < 60, "passed as soon as the read-out said so"
        stop.set()
        shopper.join()
        found = result.rollout["readout"]
        assert found["decision"] == "pass" and found["candidate"]["version"] == candidate
        # Every candidate answer is followed by an add to cart, but the read-out may be taken
        # between one answer and its feedback: one impression of the candidate's in flight.
        candidate_arm = found["candidate"]
        assert candidate_arm["impressions"] - candidate_arm["outcomes"]["add_to_cart"] in (0, 1)
        assert candidate_arm["rates"]["add_to_cart"]["estimate"] >= 0.9
        assert found["stable"]["outcomes"]["add_to_cart"] == 0
        assert re.search(r"add_to_cart rate difference \+(1\.0000|0\.9\d{3})", result.reason)
        run = MlflowClient().get_run(result.readout_run_id)
        assert run.data.tags["shoprec.model_version"] == candidate
        assert run.data.tags["shoprec.canary_verdict"] == "passed"
        assert run.data.metrics["difference"] >= 0.9
        time.sleep(1.5)  # the logs are flushed every 0.5 s
        state = rollout.status(settings)
        live = state["endpoint"]["rollout"]["readout"]
        assert state["stage"] == "canary" and state["since"]
        assert state["readout_from_logs"] == live, "the logs tell what the endpoint counted"
        scraped = server.metrics()
        assert _sample(scraped, "shoprec_readout_difference", outcome="add_to_cart",
                       bound="estimate") == live["difference"]["estimate"] >= 0.9
    finally:
        stop.set()
        shopper.join()
        _restore(settings)


@pytest.fixture(scope="module")
def interleaving(champion_dir: Path) -> Iterator[Server]:
    """A second endpoint on the session's registry whose canary interleaves."""
    yield from serve(champion_dir, env={"SHOPREC_ROLLOUT_CANARY_MODE": "interleave"})


def test_an_interleaved_canary_on_the_endpoint_credits_each_outcome_to_its_model(
        interleaving: Server) -> None:
    server = interleaving
    settings = _endpoint_settings(server)
    candidate = register_copy(settings, "1")
    _on_trial(settings, candidate)
    try:
        registry.set_stage(settings.model_name, candidate, registry.CANARY)
        assert reload_endpoint(settings)["rollout"]["readout"]["mode"] == "interleave"
        mixed = []
        for raw in OUTSIDERS:
            status, answer = server.call("/recommend", {"user_id": raw, "k": 4,
                                                        "explain": False})
            assert status == 200, answer
            if answer["model"]["version"] == candidate:  # the interleaved half
                mixed.append((raw, answer))
                for item in answer["items"][:2]:
                    status, posted = server.call("/feedback", {
                        "user_id": raw, "item_id": item["item_id"], "event_type": "add_to_cart",
                        "request_id": answer["request_id"]})
                    assert status == 200 and posted["counted"], posted
        assert mixed, "the canary share sees interleaved lists"
        found = server.call("/metadata", method="GET")[1]["rollout"]["readout"]
        credited = found["stable"]["outcomes"]["add_to_cart"] + \
            found["candidate"]["outcomes"]["add_to_cart"]
        assert credited == 2 * len(mixed) and found["shoppers"] == len(mixed)
        assert found["stable"]["impressions"] == found["candidate"]["impressions"] == len(mixed)
        share = found["candidate"]["outcomes"]["add_to_cart"] / credited
        assert found["candidate_share"]["estimate"] == pytest.approx(share)
        time.sleep(1.5)  # the logs are flushed every 0.5 s
        served = pd.concat(pd.read_parquet(f) for f in (server.data_dir / "traffic").glob(
            PART_GLOB))
        for _, answer in mixed:
            [row] = served[served["request_id"] == answer["request_id"]].itertuples()
            assert list(row.items) == [i["item_id"] for i in answer["items"]]
            assert set(row.credited) <= {"1", candidate}
            assert len(row.credited) == len(answer["items"]), "one credit per item shown"
            assert row.in_readout
        assert rollout.status(settings)["readout_from_logs"] == found
    finally:
        _restore(settings)
