"""Batch recommendations: each shopper's top k with reasons, exactly as the endpoint answers.

For e-mails and app pages that need recommendations for many shoppers at once. The model loads
as the endpoint loads it (bundle files, nothing unpickled) and every page is ranked, explained
and shaped by ``contracts.answers``, the endpoint's own code, so a shopper's rows here and their
``/recommend`` answer at the same hour hold the same items and scores; unknown shoppers get the
same best sellers (``fallback = cold_start``). Rows carry pseudonyms, never raw ids. The result
is one Parquet file and, when ``settings.score.database_url`` is set (the production profile),
a database table replaced in one transaction, so readers see the old rows or the new, never a
mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from contracts import registry
from contracts.model_info import ModelInfo, describe
from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from contracts.storage import DataPath, write_atomic
from pipelines.data.curated import read_table
from pipelines.data.sources.base import UsageError
from pipelines.data.zones import DataDir, private_dir

if TYPE_CHECKING:
    from contracts.i18n import CatalogWords
    from models.two_stage import TwoStageRecommender

COLUMNS = ["user_id", "rank", "item_id", "title", "category", "price", "score", "reason",
           "fallback", "locale", "model_name", "model_version", "scored_at"]
CHUNK = 256  # shoppers per model call: the endpoint's micro-batches, only fuller
MAX_ID_LENGTH = 128  # as the endpoint's user_id


@dataclass
class ScoreResult:
    path: str
    rows: int
    shoppers: int
    cold_start: int
    model_version: str | None
    table: str | None  # the database table replaced, if any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_served(settings: Settings,
                model_uri: str | None = None) -> tuple[TwoStageRecommender, ModelInfo]:
    """The champion (or ``model_uri``) and its lineage, loaded from its bundle files as the
    endpoint loads them (TensorFlow imported here)."""
    from contracts.pyfunc import load_logged

    missing = registry.store_missing(settings.mlflow_tracking_uri)
    if missing is not None:
        raise UsageError(f"{registry.NO_CHAMPION} for {settings.model_name!r}: no MLflow store "
                         f"at {missing}; run `shoprec train` first")
    registry.configure(settings)
    uri = model_uri or registry.champion_uri(settings.model_name)
    if uri is None:
        raise UsageError(f"{registry.NO_CHAMPION} for {settings.model_name!r}: run "
                         "`shoprec train` first")
    info = describe(uri)
    return load_logged(info.uri), info


def recommend_all(recommender: TwoStageRecommender, shoppers: Sequence[str], k: int,
                  when: pd.Timestamp, words: CatalogWords | None = None) -> pd.DataFrame:
    """One row per (shopper, item), best first, with the reason a shopper reads in ``words``'
    locale (default the shop's)."""
    from contracts.answers import COLD_START, Answers, PageRequest
    from contracts.i18n import Locales, localise
    from models.queries import Filters, Query

    words = words or Locales.load().default
    answers = Answers(recommender)
    best_sellers = localise(answers.popular(k, True, Filters()), words)  # every unknown shopper
    rows: list[dict[str, Any]] = []
    for start in range(0, len(shoppers), CHUNK):
        part = shoppers[start:start + CHUNK]
        known = [u for u in part if recommender.is_known(u)]
        pages = dict(zip(known, (localise(p, words) for p in answers.pages(
            [PageRequest(Query(u, k, True, Filters(), when), True) for u in known])), strict=True))
        for user in part:
            items, fallback = ((pages[user], None) if user in pages
                               else (best_sellers, COLD_START))
            rows += [{"user_id": user, "rank": item["rank"], "item_id": item["item_id"],
                      "title": item["title"], "category": item["category"],
                      "price": item["price"], "score": item["score"],
                      "reason": item["explanation"]["reason"], "fallback": fallback,
                      "locale": words.tag}
                     for item in items]
    return pd.DataFrame(rows, columns=COLUMNS[:10])


def score(settings: Settings, out: DataPath, shoppers: Sequence[str] | None = None,
          k: int | None = None, model_uri: str | None = None,
          when: pd.Timestamp | None = None, locale: str | None = None) -> ScoreResult:
    """Score ``shoppers`` (pseudonyms; default every shopper the model knows) into ``out``
    (written whole: a reader never sees half a file), with reasons in ``locale`` (default the
    shop's; one without a catalog is refused, not silently replaced)."""
    from contracts.i18n import Locales

    locales = Locales.load(settings.shop.locale, settings.shop.currency)
    choice = locales.choose(locale)
    if choice.fallback:
        raise UsageError(f"--locale {locale}: no catalog for it; there are: "
                         f"{', '.join(locales.tags)}")
    private_dir(out.parent)
    recommender, info = load_served(settings, model_uri)
    when = when if when is not None else pd.Timestamp.now(tz="UTC")
    users = list(dict.fromkeys(shoppers if shoppers is not None else recommender.known_users))
    frame = recommend_all(recommender, users, k or settings.score.k, when, choice.words).assign(
        model_name=info.name, model_version=info.version, scored_at=when)
    write_atomic(out, lambda handle: frame.to_parquet(handle, index=False))
    table = None
    if settings.score.database_url is not None:
        table = write_table(frame, settings.score.database_url.get_secret_value(),
                            settings.score.table)
    return ScoreResult(path=str(out), rows=len(frame), shoppers=len(users),
                       cold_start=int(frame.drop_duplicates("user_id")["fallback"].notna().sum()),
                       model_version=info.version, table=table)


def write_table(frame: pd.DataFrame, url: str, table: str) -> str:
    """Replace ``table`` with ``frame`` in one transaction (PostgreSQL's DDL is transactional);
    a database that cannot be reached or written is one line naming the table."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        engine = create_engine(url)
    except (ArgumentError, ValueError) as err:
        raise UsageError(f"SHOPREC_SCORE_DATABASE_URL is not a database URL: {err}") from None
    try:
        with engine.begin() as connection:
            frame.to_sql(table, connection, if_exists="replace", index=False)
    except SQLAlchemyError as err:
        cause = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise UsageError(f"could not replace table {table}: {cause}") from None
    finally:
        engine.dispose()
    return table


def active_shoppers(settings: Settings, days: int | None = None) -> list[str]:
    """Shoppers with curated events in the ``days`` (default ``settings.score.active_days``) up
    to the newest event: the data's own clock, so an old data set still has active shoppers."""
    events = read_table(DataDir(settings.data_dir), "events", columns=["user_id", "timestamp"])
    if events.empty:
        return []
    moments = pd.to_datetime(events["timestamp"], utc=True)
    since = moments.max() - pd.Timedelta(days=days or settings.score.active_days)
    return sorted(events.loc[moments >= since, "user_id"].astype(str).unique())


def score_active(settings: Settings, version: str | None) -> ScoreResult:
    """The DAG's step after a promotion: the active shoppers into
    ``<data dir>/scores/recommendations-v<version>.parquet`` (and the table, if configured)."""
    out = DataDir(settings.data_dir).root / "scores" / f"recommendations-v{version}.parquet"
    return score(settings, out, active_shoppers(settings))


def read_users(path: Path, settings: Settings) -> list[str]:
    """Raw customer ids from a file, pseudonymised with the ingestion key: one id per line, or a
    ``.csv`` with a ``user_id`` column (such as the shop's customer export)."""
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            if "user_id" not in frame:
                raise UsageError(f"{path} has no user_id column")
            raw = frame["user_id"].tolist()
        else:
            raw = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise UsageError(f"cannot read --users {path}: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    ids = [r.strip() for r in raw if r.strip()]
    if not ids:
        raise UsageError(f"--users {path} holds no customer id")
    too_long = next((i for i in ids if len(i) > MAX_ID_LENGTH or "\x00" in i), None)
    if too_long is not None:
        raise UsageError(f"--users {path}: an id longer than {MAX_ID_LENGTH} characters or "
                         "with a NUL byte")
    pseudonymiser = Pseudonymiser(settings.require_pseudonym_key())
    return [pseudonymiser.one(i) for i in ids]

