"""The shop's own Prometheus metrics, served with BentoML's on the endpoint's ``/metrics``.

BentoML 1.4 asks services to use ``prometheus_client`` directly (``bentoml.metrics`` is
deprecated): its workers start with ``PROMETHEUS_MULTIPROC_DIR`` set, so these metrics live in
the shared multiprocess files its ``/metrics`` route reads. Labels are low-cardinality (routes,
model versions, fallback kinds, rollout roles); updates are a dictionary lookup and an add, cheap
enough for every request. ``infra/grafana/shoprec.json`` charts them.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

NO_FALLBACK = "none"
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(
    "shoprec_requests", "Answered API requests by route, model version and fallback kind.",
    ["route", "model_version", "fallback"])
RECOMMEND_SECONDS = Histogram(
    "shoprec_recommend_seconds", "Time to answer /recommend by model version and whether the "
    "page was explained (explain=true: the explanation latency shoppers wait for).",
    ["model_version", "explain"], buckets=_SECONDS)
BATCH_SIZE = Histogram(
    "shoprec_batch_size", "Requests sharing one model call (the micro-batcher's batch size).",
    ["batcher", "model_version"], buckets=(1, 2, 4, 8, 16, 32, 64, 128))
BATCH_SECONDS = Histogram(
    "shoprec_batch_seconds", "Time of one micro-batched model call (recommend: ranking and the "
    "integrated-gradients explanations of its pages; explain: the /explain pairs).",
    ["batcher", "model_version"], buckets=_SECONDS)
ROLLOUT_REQUESTS = Counter(
    "shoprec_rollout_requests", "/recommend calls during a rollout by model version, role "
    "(stable, canary, shadow) and outcome (ok, error: failed or timed out).",
    ["model_version", "role", "outcome"])
ROLLOUT_SECONDS = Histogram(
    "shoprec_rollout_seconds", "/recommend latency per model during a rollout.",
    ["model_version", "role"], buckets=_SECONDS)
ROLLOUT_SHARE = Gauge(
    "shoprec_rollout_share", "Share of requests (shadow) or shoppers (canary) the candidate "
    "answers now; 0 when no rollout runs.", ["stage"], multiprocess_mode="livemax")
ROLLBACKS = Counter(
    "shoprec_rollbacks", "Automatic rollbacks by the rolled-back model version.",
    ["model_version"])


IMPRESSIONS = Counter(
    "shoprec_impressions", "Answers shown by model version (an interleaved answer counts for "
    "both models in it).", ["model_version"])
OUTCOMES = Counter(
    "shoprec_outcomes", "Outcomes joined to a served answer, counted once, by the model version "
    "credited with the item and event type.", ["model_version", "event_type"])
OUTCOME_REVENUE = Counter(
    "shoprec_outcome_revenue", "Revenue of joined purchases (quantity times price, where a "
    "price is known) by credited model version.", ["model_version"])
READOUT_RATE = Gauge(
    "shoprec_readout_rate", "The canary's outcome rate per impression by model version, role, "
    "outcome and bound (estimate, low, high: the 95 % interval over shoppers).",
    ["model_version", "role", "outcome", "bound"], multiprocess_mode="livemostrecent")
READOUT_DIFFERENCE = Gauge(
    "shoprec_readout_difference", "The canary's deciding outcome difference, candidate minus "
    "stable, by outcome and bound (estimate, low, high).", ["outcome", "bound"],
    multiprocess_mode="livemostrecent")
READOUT_SHOPPERS = Gauge(
    "shoprec_readout_shoppers", "Shoppers with impressions in the canary's read-out by model "
    "version and role.", ["model_version", "role"], multiprocess_mode="livemostrecent")
_BOUNDS = ("estimate", "low", "high")


def readout(summary: dict) -> None:
    """Set the read-out gauges from ``contracts.readout.Readout.summary`` (bounds not yet known
    are left as they were)."""
    for side in ("stable", "candidate"):
        arm = summary[side]
        READOUT_SHOPPERS.labels(arm["version"], arm["role"]).set(arm["shoppers"])
        for outcome, rate in arm["rates"].items():
            for bound in _BOUNDS:
                if rate[bound] is not None:
                    READOUT_RATE.labels(arm["version"], arm["role"], outcome, bound).set(
                        rate[bound])
    for bound in _BOUNDS:
        if summary["difference"][bound] is not None:
            READOUT_DIFFERENCE.labels(summary["outcome"], bound).set(
                summary["difference"][bound])


def shown(versions) -> None:
    for version in set(versions):
        IMPRESSIONS.labels(version or "none").inc()


def outcome(version: str | None, event_type: str, revenue: float | None) -> None:
    OUTCOMES.labels(version or "none", event_type).inc()
    if revenue:
        OUTCOME_REVENUE.labels(version or "none").inc(revenue)


def answered(route: str, version: str | None, fallback: str | None) -> None:
    REQUESTS.labels(route, version or "none", fallback or NO_FALLBACK).inc()


def recommended(version: str | None, explain: bool, seconds: float) -> None:
    RECOMMEND_SECONDS.labels(version or "none", "true" if explain else "false").observe(seconds)


def batch_observer(batcher: str, version: str | None) -> Callable[[int, float], None]:
    """A ``MicroBatcher.on_batch`` hook for one model's batcher (label lookups done here)."""
    size = BATCH_SIZE.labels(batcher, version or "none")
    seconds = BATCH_SECONDS.labels(batcher, version or "none")

    def observe(count: int, took: float) -> None:
        size.observe(count)
        seconds.observe(took)

    return observe
