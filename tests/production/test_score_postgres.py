"""Batch scores into the local PostgreSQL: the table is replaced whole, in one transaction."""

from __future__ import annotations

import pandas as pd
import sqlalchemy

from pipelines.steps.score import COLUMNS, write_table
from tests.production.conftest import throwaway_database


def _scores(shoppers: int, version: str) -> pd.DataFrame:
    return pd.DataFrame([
        {"user_id": f"u_{u:016x}", "rank": r, "item_id": f"I{u + r}", "title": "Red lamp",
         "category": "lighting", "price": None if r == 2 else 9.5, "score": 1.0 / r,
         "reason": "From Nordvik, which you have bought 3 times.", "fallback": None,
         "model_name": "shoprec", "model_version": version,
         "scored_at": pd.Timestamp("2026-11-30T12:00", tz="UTC")}
        for u in range(shoppers) for r in (1, 2, 3)], columns=COLUMNS)


def test_scores_replace_the_table_and_read_back_typed(postgres: str) -> None:
    with throwaway_database(postgres, "scores") as url:
        assert write_table(_scores(4, "1"), url, "shoprec_recommendations") == (
            "shoprec_recommendations")
        write_table(_scores(2, "2"), url, "shoprec_recommendations")  # the next promotion
        engine = sqlalchemy.create_engine(url)
        try:
            table = pd.read_sql_table("shoprec_recommendations", engine)
        finally:
            engine.dispose()
    assert len(table) == 6 and set(table["model_version"]) == {"2"}, "replaced, not appended"
    assert list(table.columns) == COLUMNS
    assert table["price"].isna().sum() == 2 and table["fallback"].isna().all()
    assert str(table["scored_at"].dt.tz) == "UTC"
