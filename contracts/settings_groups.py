"""The groups of ``Settings``: one typed model per concern (``settings.gate.min_users``).

Each group's environment variables keep their flat names (``SHOPREC_GATE_MIN_USERS``), as do
the settings file's keys (``gate_min_users``; a ``[shoprec.gate]`` table works too).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class GateSettings(BaseModel):
    """The promotion gate: the metric a challenger must improve, by how much, on how many
    shoppers."""

    model_config = ConfigDict(extra="ignore")

    metric: str = Field(
        default="ndcg@10", description="Metric a challenger must improve to become champion."
    )
    margin: float = Field(
        default=0.0, ge=0, description="How much better (absolute) a version must be to "
        "replace the champion: the 95 % lower bounds of its paired differences against the "
        "champion and the best baseline must be above this."
    )
    noninferiority_margin: float = Field(
        default=0.01, ge=0, description="With no champion yet, a version becomes the first one "
        "when it is not worse than the best baseline by more than this (absolute, in gate "
        "metric units): the 95 % lower bound of its paired difference must be above minus this. "
        "A shop without a champion gets no answers at all, so a model within a hundredth of "
        "NDCG@10 of EASE serves better than nothing; 0.01 is well under the gaps that tell a "
        "working model from a broken one (the demo's first champion was +0.057 over EASE), so "
        "a clearly worse model still never serves. 0: the first version must beat the floor.",
    )
    min_users: int = Field(
        default=50, ge=1, description="The gate refuses to promote on an evaluation window with "
        "fewer shoppers than this (too few to tell models apart).",
    )
    slice_share: float = Field(
        default=0.5, ge=0, lt=1, description="Share of the validation window's events, the "
        "latest, kept as the gate slice: early stopping, the grid's choice and every weight are "
        "chosen on the earlier selection slice, and every model (candidate, champion, baselines) "
        "is judged on the gate slice alone, so the gate's figures carry no selection optimism. "
        "0: no separate slice (the gate judges on the window it chose on).",
    )


class RolloutSettings(BaseModel):
    """Shadow, canary and full rollout of a new champion on the endpoint."""

    model_config = ConfigDict(extra="ignore")

    shadow_share: float = Field(
        default=0.2, gt=0, le=1, description="Rollout, shadow stage: share of live /recommend "
        "requests the new champion also answers, off the request path (logged, not returned).",
    )
    canary_share: float = Field(
        default=0.1, gt=0, le=1, description="Rollout, canary stage: share of shoppers (sticky "
        "by pseudonym hash) the new champion answers.",
    )
    min_requests: int = Field(
        default=50, ge=1, description="Candidate requests a rollout stage needs before the "
        "endpoint judges it, and before the stage may complete.",
    )
    max_error_rate: float = Field(
        default=0.02, ge=0, le=1, description="Roll back when more than this share of the "
        "candidate's calls fail or time out.",
    )
    max_p95_ratio: float = Field(
        default=1.5, gt=0, description="Roll back when the candidate's p95 latency exceeds the "
        "stable model's by more than this factor.",
    )
    max_p99_ratio: float = Field(
        default=2.0, gt=0, description="The same for p99 latency.",
    )
    timeout_ms: float = Field(
        default=1000.0, gt=0, description="A candidate answer slower than this counts as a "
        "failure; the shopper gets the stable model's answer instead.",
    )
    stage_seconds: float = Field(
        default=600.0, ge=0, description="How long `shoprec rollout shadow|canary` (and the "
        "DAG) keep a stage before it may move on.",
    )
    attribution_minutes: float = Field(
        default=30.0, gt=0, le=7 * 24 * 60, description="An outcome (/feedback) joins the "
        "answer it followed when it comes at most this many minutes after it.",
    )
    outcome: Literal["view", "add_to_cart", "purchase"] = Field(
        default="add_to_cart", description="The outcome rate per impression the canary is "
        "judged on: add_to_cart, a shopper's intent to buy, comes often enough to decide "
        "within a stage, unlike purchases, and means more than a view (a click).",
    )
    min_shoppers: int = Field(
        default=30, ge=2, description="Shoppers with impressions on each side (split) or in "
        "all (interleave) before the outcome read-out may pass or roll back a canary: the "
        "normal approximation's floor only, since verdicts come from a confidence sequence "
        "valid however often the canary is looked at (contracts.online_stats.sequence_factor).",
    )
    outcome_margin: float = Field(
        default=-0.005, ge=-1, le=1, description="The canary passes once the 95 % confidence "
        "sequence's lower bound of its outcome difference (its rate minus stable's; "
        "interleave: its share of credited outcomes minus stable's) is above this, and is "
        "rolled back once the upper bound is below it; negative: not worse by more than this.",
    )
    canary_mode: Literal["split", "interleave"] = Field(
        default="split", description="Canary: split gives the canary share of shoppers the "
        "candidate's list; interleave gives them one team-draft list merged from both models, "
        "each item credited to the model that placed it.",
    )


class ServeSettings(BaseModel):
    """The HTTP endpoint: where it listens and how it runs the model."""

    model_config = ConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3000
    tracing: bool = Field(
        default=False, description="Pass the endpoint's requests through BentoML's "
        "OpenTelemetry middleware (configure its exporter and sample rate in BENTOML_CONFIG). Off, "
        "requests skip it: with BentoML's default sample rate of 0 it records nothing yet costs "
        "about a quarter of the event loop's time per request (measured).",
    )
    model_threads: int = Field(
        default=1, ge=0, description="TensorFlow threads per operation on the endpoint's model "
        "thread (0: TensorFlow's default, one per core). One: a serving micro-batch is too small "
        "to split, handing each of its many small operations across threads cost more than it "
        "saved (measured: explained answers about a quarter cheaper), and the event loop keeps "
        "a core of its own. Raise it on many-core hosts serving large pages.",
    )
    insecure: bool = Field(
        default=False, description="Let the endpoint listen on a non-loopback address without "
        "an API token (``shoprec serve --insecure``); it warns.",
    )


class ShopSettings(BaseModel):
    """What every shopper-facing word defaults to: the shop's language and currency."""

    model_config = ConfigDict(extra="ignore")

    locale: str = Field(
        default="en", pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$", description="The "
        "locale answers are in when a request asks for none, or for one without a catalog "
        "(a folder of contracts/locales, e.g. en, zh_CN).",
    )
    currency: str = Field(
        default="GBP", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the catalogue's "
        "prices, written for each shopper's locale (£12.50, ¥12.50).",
    )


class DriftSettings(BaseModel):
    """The drift and skew report (Evidently)."""

    model_config = ConfigDict(extra="ignore")

    recent_days: int = Field(
        default=7, ge=1, description="Drift report: days of served traffic compared with "
        "training; without a champion, the newest days of data compared with the earlier ones.",
    )
    max_share: float = Field(
        default=0.5, gt=0, le=1, description="Drift report: a part breaches when at least this "
        "share of its columns drift (Evidently's per-column tests and thresholds).",
    )
    popularity_ratio_max: float = Field(
        default=3.0, gt=0, description="Drift report: a breach when served items are on average "
        "more than this many times as popular (Evidently's ARP) as what shoppers bought.",
    )
    min_rows: int = Field(
        default=50, ge=2, description="Drift report: a part with fewer current rows is reported "
        "as too small to judge, not compared.",
    )
    blocks_promotion: bool = Field(
        default=False, description="A drift breach fails the DAG's drift task and so keeps the "
        "run's model from promotion (default: a warning only).",
    )


class TrafficSettings(BaseModel):
    """The endpoint's log of what it served (for the drift report)."""

    model_config = ConfigDict(extra="ignore")

    log: bool = Field(
        default=True, description="The endpoint logs what it served (pseudonyms, never raw ids) "
        "under <data_dir>/traffic for the drift report.",
    )
    flush_rows: int = Field(
        default=1000, ge=1, description="The traffic log writes a Parquet part once it buffers "
        "this many answers...",
    )
    flush_seconds: float = Field(
        default=60.0, gt=0, description="...or this often, whichever comes first.",
    )
    buffer_rows: int = Field(
        default=100_000, ge=1, description="Most answers the traffic log buffers; beyond, it "
        "drops and counts them rather than slow the answers down.",
    )


class ScoreSettings(BaseModel):
    """Batch scoring (``shoprec score`` and the DAG's scoring task)."""

    model_config = ConfigDict(extra="ignore")

    k: int = Field(default=10, ge=1, le=100, description="Batch scoring: items per shopper.")
    active_days: int = Field(
        default=30, ge=1, description="The DAG's batch scoring covers shoppers with events in "
        "this many days up to the newest curated event.",
    )
    database_url: SecretStr | None = Field(
        default=None, description="Batch scoring also replaces a table in this database "
        "(SQLAlchemy URL, e.g. postgresql+psycopg2://user@127.0.0.1:5432/shop); unset: Parquet "
        "only.",
    )
    table: str = Field(
        default="shoprec_recommendations", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Table batch scoring replaces in score_database_url.",
    )


class EaseSettings(BaseModel):
    """The EASE baseline the gate compares every candidate with."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    lambda_: float = Field(  # ``lambda`` in the environment and the settings file
        alias="lambda", default=100.0, gt=0, description="L2 regularisation (λ) of the EASE "
        "baseline the gate's candidates are compared with; larger values shrink item-item "
        "weights more. Used only when ease_lambda_grid is empty (an explicit override).",
    )
    lambda_grid: list[float] = Field(
        default_factory=lambda: [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 3000.0],
        description="EASE's λ is chosen among these on an inner time split of the training "
        "window (the floor must be as strong as it honestly can be); empty: ease_lambda.",
    )
    max_items: int = Field(
        default=20_000, gt=0, description="EASE costs O(items^3): above this many items it is "
        "restricted to the most popular ones (said in its params and the benchmark output).",
    )


GROUPS: dict[str, type[BaseModel]] = {
    "gate": GateSettings, "rollout": RolloutSettings, "serve": ServeSettings,
    "drift": DriftSettings, "traffic": TrafficSettings, "score": ScoreSettings,
    "ease": EaseSettings, "shop": ShopSettings,
}


def grouped(values: dict) -> dict:
    """Flat names (``gate_min_users``, as the environment spells them) folded into their
    group (``{"gate": {"min_users": ...}}``); other names, and groups given whole, as they are."""
    out: dict = {}
    for key, value in values.items():
        group, _, name = str(key).partition("_")
        if group in GROUPS and name:
            fields = GROUPS[group].model_fields
            # As the model reads it: its alias where it has one (``lambda``, a keyword).
            name = next((f.alias or n for n, f in fields.items() if name in (n, f.alias)), name)
            out.setdefault(group, {})
            if isinstance(out[group], dict):
                out[group][name] = value
        elif key in GROUPS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**value, **out[key]}
        else:
            out[key] = value
    return out
