"""Request and response bodies of the HTTP API: the contract shop pages code against.

Strict types with bounds, so a bad request is refused with the field and the problem named
(422) before any model work, and the OpenAPI document says exactly what is accepted. Strict means
no coercion a client would not mean: ``"k": true`` or ``"k": "5"`` is not 1 or 5, ``"explain":
"yes"`` is not true, and non-finite numbers (``NaN``, ``Infinity``, ``1e309``) are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.pseudonyms import PSEUDONYM_PATTERN
from contracts.tables import EVENT_TYPES


def _utf8(value: str) -> str:
    """JSON lets a string carry a lone surrogate (``"\\ud800"``), which no id can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError("not valid Unicode (an unpaired surrogate)") from err
    return value


Text = Annotated[str, AfterValidator(_utf8)]
UserId = Field(min_length=1, max_length=128, pattern=r"\S", description="Raw customer id.")
ItemId = Field(min_length=1, max_length=128, description="Catalogue item id.")
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
LocaleTag = Field(
    default=None, max_length=35, pattern=r"^[A-Za-z]{1,8}([-_][A-Za-z0-9]{1,8})*$",
    description="The language of what the shopper reads (BCP 47, e.g. `zh-CN`); overrides the "
    "Accept-Language header. One without a catalog gets the shop's default, and the answer "
    "says so (`locale_fallback`).")


FEEDBACK_FUTURE_SLACK = timedelta(minutes=5)  # clock skew a shop page may have


class _Body(BaseModel):
    # A misspelt option is an error, not ignored; types are not coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


# Swagger's "Try it out" starts from each body's example: the demo shop's first customer and
# first item (`make demo`: pipelines/data/synthetic_shop.py), so each example is answered 200 there.
DEMO_SHOPPER, DEMO_ITEM, DEMO_CATEGORY = "C000001", "SKU00001", "kitchenware"


def _example(body: dict) -> ConfigDict:
    """A body's config with the example Swagger's "Try it out" starts from (the demo's ids)."""
    return ConfigDict(**_Body.model_config, json_schema_extra={"examples": [body]})


class Filters(_Body):
    category: Text | None = Field(default=None, max_length=128)
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class RecommendRequest(_Body):
    model_config = _example({"user_id": DEMO_SHOPPER, "k": 5,
                             "filters": {"category": DEMO_CATEGORY}})
    locale: str | None = LocaleTag
    user_id: Text | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"\S",
        description="Raw customer id. Give this or `pseudonym`, not both.")
    pseudonym: str | None = Field(
        default=None, pattern=PSEUDONYM_PATTERN,
        description="The shopper's pseudonym as curated data and the model's metadata hold it "
        "(`u_` + 16 hex digits), for callers that never see raw ids, such as the pipeline's "
        "smoke test.")
    k: int = Field(default=10, ge=1, le=100)
    explain: bool = True
    exclude_purchased: bool = True
    filters: Filters = Field(default_factory=Filters)

    @model_validator(mode="after")
    def _one_shopper(self) -> RecommendRequest:
        if (self.user_id is None) == (self.pseudonym is None):
            raise ValueError("give exactly one of user_id and pseudonym")
        return self


class ExplainRequest(_Body):
    model_config = _example({"user_id": DEMO_SHOPPER, "item_id": DEMO_ITEM})
    locale: str | None = LocaleTag
    user_id: Text = UserId
    item_id: Text = ItemId


class SimilarRequest(_Body):
    model_config = _example({"item_id": DEMO_ITEM, "k": 5})
    locale: str | None = LocaleTag
    item_id: Text = ItemId
    k: int = Field(default=10, ge=1, le=100)


class HistoryRequest(_Body):
    model_config = _example({"user_id": DEMO_SHOPPER, "k": 5})
    locale: str | None = LocaleTag
    user_id: Text = UserId
    k: int = Field(default=10, ge=1, le=100)


REQUEST_ID_PATTERN = r"^r-[0-9a-f]{32}$"  # as ``serving.attribution`` issues them


class FeedbackRequest(_Body):
    model_config = _example({"user_id": DEMO_SHOPPER, "item_id": DEMO_ITEM,
                             "event_type": "purchase", "quantity": 1})
    user_id: Text = UserId
    item_id: Text = ItemId
    event_type: EventType
    request_id: str | None = Field(
        default=None, pattern=REQUEST_ID_PATTERN,
        description="The `request_id` of the /recommend answer that showed the item. Absent: "
        "the latest answer that showed it to this shopper within the attribution window "
        "before the event, if any.")
    quantity: int = Field(default=1, ge=1, le=10_000)
    unit_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    timestamp: datetime | None = Field(
        default=None, strict=False,  # an ISO 8601 string, as JSON carries times
        description="When it happened, with a time zone; default now. Not in the future, nor "
        "older than the server's `feedback_max_age_hours` (default a week).")

    @field_validator("timestamp")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone, e.g. 2026-01-31T12:00:00Z")
        if value > datetime.now(UTC) + FEEDBACK_FUTURE_SLACK:
            raise ValueError("timestamp is in the future")
        return value


class Attribution(BaseModel):
    feature: str
    value: str
    attribution: float
    label: str = Field(description="What the feature is, in plain words in the answer's locale.")


class Explanation(BaseModel):
    """Why the model scored this item as it did: integrated gradients over its features."""

    kind: Literal["integrated_gradients"] = "integrated_gradients"
    reason: str
    attributions: list[Attribution] = Field(
        description="Per-feature share of score - baseline_score (integrated gradients)."
    )
    baseline_score: float
    completeness_delta: float = Field(
        description="sum(attributions) - (score - baseline_score): the numerical error."
    )


class PopularityNote(BaseModel):
    """Why a shopper the model does not know sees a best seller: no model scored it, so there
    are no attributions, only the item's share of purchases (which is also its score)."""

    kind: Literal["popularity"] = "popularity"
    reason: str
    share_of_purchases: float


class Product(BaseModel):
    """An item as a shopper reads it (title, category's name and price in their locale)."""

    item_id: str
    title: str
    category: str
    category_name: str = Field(description="The category as the shopper reads it: translated "
                               "where the locale's catalogue names it, else as given.")
    price: float | None
    price_text: str | None = Field(description="The price in the shop's currency, written for "
                                   "the answer's locale.")


class InLocale(BaseModel):
    """An answer with words in it says which language they are in."""

    locale: str = Field(description="The locale the answer's words are in (BCP 47).")
    locale_fallback: bool = Field(description="True when the locale asked for (field or "
                                  "Accept-Language) has no catalog: the shop's default is used.")


class ModelRef(BaseModel):
    name: str
    version: str | None
    run_id: str | None


class Item(Product):
    score: float
    rank: int
    new: bool = Field(default=False, description="In the catalogue since the model was trained: "
                      "recommended from its content (category, brand, price, title).")
    explanation: Annotated[Explanation | PopularityNote, Field(discriminator="kind")] | None = (
        Field(default=None, description="`integrated_gradients` for items the model ranked; "
              "`popularity` for the best sellers a cold-start shopper gets; null when "
              "`explain` is false."))


class RecommendResponse(InLocale):
    request_id: str = Field(description="This answer's id: send it with /feedback about its "
                            "items, so the outcome is credited to the model that showed them.")
    user_id: str = Field(description="The id as given: raw, or the pseudonym.")
    items: list[Item]
    fallback: Literal["cold_start"] | None
    model: ModelRef


class ExplainResponse(InLocale):
    user_id: str
    item_id: str
    score: float = Field(description="The ranker's score of this (user, item) pair.")
    explanation: Explanation
    fallback: Literal["cold_start"] | None
    model: ModelRef


class SimilarItem(Product):
    score: float = Field(description="Cosine similarity of candidate-tower embeddings.")
    rank: int
    shared: list[str] = Field(description="Attributes this item shares with the query item.")
    reason: str


class SimilarResponse(InLocale):
    item_id: str
    items: list[SimilarItem]
    model: ModelRef


class HistoryItem(Product):
    """A past purchase, as the shopper reads it."""


class HistoryResponse(InLocale):
    user_id: str
    items: list[HistoryItem] = Field(
        description="The purchases the served model starts from, most recent first; empty for "
        "a shopper it does not know.")
    model: ModelRef


class FeedbackResponse(BaseModel):
    feedback_id: str
    batch: str = Field(description="The hour file the event joined, relative to the inbox "
                       "(e.g. `feedback/2026-11-30T14.csv`): the first pipeline run after that "
                       "hour closes lands and validates it as one batch.")
    request_id: str | None = Field(description="The answer the event joined (given or "
                                   "inferred); null: it follows no answer still remembered.")
    counted: bool = Field(description="Whether it counted as an outcome of that answer now; "
                          "false for one already counted (same request, item and event type) "
                          "or that joined no answer.")


class Metadata(BaseModel):
    name: str
    version: str | None
    run_id: str | None
    uri: str
    data_hash: str | None
    window_start: str | None
    window_end: str | None
    metrics: dict[str, float]
    loaded_at: datetime


class ModelHealth(BaseModel):
    """One model's share of a rollout stage, as the endpoint counted it."""

    version: str | None
    run_id: str | None
    role: Literal["stable", "shadow", "canary"]
    requests: int
    errors: int = Field(description="Calls that failed or ran past the rollout timeout.")
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class Interval(BaseModel):
    """A figure with its 95 % interval over shoppers (bounds null below two shoppers)."""

    estimate: float | None
    low: float | None
    high: float | None


class ArmReadout(BaseModel):
    """What the shoppers did after one model's answers in a canary."""

    version: str | None
    role: Literal["stable", "canary"]
    shoppers: int
    impressions: int
    outcomes: dict[str, int] = Field(description="Joined outcomes by event type (view is a "
                                     "click on a shown item), each counted once.")
    rates: dict[str, Interval] = Field(description="Outcomes per impression by event type.")
    revenue_per_impression: Interval | None = Field(description="Null until a joined purchase "
                                                    "carries a price.")


class CanaryReadout(BaseModel):
    """The canary's online read-out and the decision it gives (``contracts.readout``)."""

    mode: Literal["split", "interleave"]
    outcome: Literal["view", "add_to_cart", "purchase"]
    margin: float
    min_shoppers: int
    shoppers: int = Field(description="Split: the smaller side's shoppers; interleave: all.")
    stable: ArmReadout
    candidate: ArmReadout
    difference: Interval = Field(description="Split: the candidate's rate minus the stable "
                                 "model's; interleave: its share of credited outcomes minus "
                                 "the stable model's; with its 95 % interval.")
    sequence: Interval = Field(description="The same difference with the 95 % confidence "
                               "sequence's bounds, valid at every look: what the decision "
                               "compares with the margin.")
    candidate_share: Interval | None = Field(description="Interleave: the candidate's share of "
                                             "the credited outcomes.")
    decision: Literal["pass", "roll_back", "wait"]
    reason: str


class RolloutState(BaseModel):
    stage: Literal["shadow", "canary"]
    share: float = Field(description="Shadow: share of requests the candidate also answers "
                         "(logged, not returned). Canary: share of shoppers it answers.")
    started_at: datetime
    stable: ModelHealth
    candidate: ModelHealth
    readout: CanaryReadout | None = Field(default=None, description="Canary: outcomes per "
                                          "model and the decision they give; null in shadow.")


class RollbackEvent(BaseModel):
    at: datetime
    version: str | None = Field(description="The version rolled back.")
    stable_version: str | None = Field(description="The version serving again.")
    stage: Literal["shadow", "canary"]
    reason: str
    figures: RolloutState | None = Field(description="The rollout's counts when it broke a "
                                         "threshold; null when the candidate could not load.")


class ShopperStateInfo(BaseModel):
    """How fresh the online shopper store the endpoint answers from is."""

    store: str = Field(description="sqlite or redis.")
    last_batch: str | None = Field(description="The batch applied last.")
    applied_at: str | None = Field(description="When it was applied (UTC, ISO 8601).")
    batches: int = Field(description="Batches applied so far.")
    events: int = Field(description="Positive events held (at most the per-shopper limit each).")


class ServiceMetadata(Metadata):
    """The stable model's lineage, any rollout in progress, and the latest rollbacks."""

    shopper_state: ShopperStateInfo | None = Field(
        description="The online shopper store; null: answers come from the model's snapshot.")
    rollout: RolloutState | None
    rollbacks: list[RollbackEvent] = Field(description="Most recent first, since start-up.")


class ReloadResponse(BaseModel):
    changed: bool
    previous: Metadata | None
    current: Metadata
    rollout: RolloutState | None


class Problem(BaseModel):
    detail: str
