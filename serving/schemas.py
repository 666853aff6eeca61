"""Request and response bodies of the HTTP API: the contract shop pages code against.

Strict types with bounds, so a bad request is refused with the field and the problem named
(422) before any model work, and the OpenAPI document says exactly what is accepted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.pseudonyms import PSEUDONYM_PATTERN
from contracts.tables import EVENT_TYPES

UserId = Field(min_length=1, max_length=128, pattern=r"\S", description="Raw customer id.")
ItemId = Field(min_length=1, max_length=128, description="Catalogue item id.")
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not ignored


class Filters(_Body):
    category: str | None = Field(default=None, max_length=128)
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class RecommendRequest(_Body):
    user_id: str | None = Field(
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
    user_id: str = UserId
    item_id: str = ItemId


class SimilarRequest(_Body):
    item_id: str = ItemId
    k: int = Field(default=10, ge=1, le=100)


class FeedbackRequest(_Body):
    user_id: str = UserId
    item_id: str = ItemId
    event_type: EventType
    quantity: int = Field(default=1, ge=1, le=10_000)
    unit_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    timestamp: datetime | None = Field(default=None, description="Default: now (UTC).")


class Attribution(BaseModel):
    feature: str
    value: str
    attribution: float


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


class ModelRef(BaseModel):
    name: str
    version: str | None
    run_id: str | None


class Item(BaseModel):
    item_id: str
    title: str
    category: str
    price: float | None
    score: float
    rank: int
    explanation: Annotated[Explanation | PopularityNote, Field(discriminator="kind")] | None = (
        Field(default=None, description="`integrated_gradients` for items the model ranked; "
              "`popularity` for the best sellers a cold-start shopper gets; null when "
              "`explain` is false."))


class RecommendResponse(BaseModel):
    user_id: str = Field(description="The id as given: raw, or the pseudonym.")
    items: list[Item]
    fallback: Literal["cold_start"] | None
    model: ModelRef


class ExplainResponse(BaseModel):
    user_id: str
    item_id: str
    score: float = Field(description="The ranker's score of this (user, item) pair.")
    explanation: Explanation
    fallback: Literal["cold_start"] | None
    model: ModelRef


class SimilarItem(BaseModel):
    item_id: str
    title: str
    category: str
    price: float | None
    score: float = Field(description="Cosine similarity of candidate-tower embeddings.")
    rank: int
    shared: list[str] = Field(description="Attributes this item shares with the query item.")
    reason: str


class SimilarResponse(BaseModel):
    item_id: str
    items: list[SimilarItem]
    model: ModelRef


class FeedbackResponse(BaseModel):
    feedback_id: str
    batch: str = Field(description="Inbox file the next pipeline run lands and validates.")


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


class ReloadResponse(BaseModel):
    changed: bool
    previous: Metadata | None
    current: Metadata


class Problem(BaseModel):
    detail: str
