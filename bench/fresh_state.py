"""Benchmark: answers from what the shop knows now, without retraining (the online shopper store).

A synthetic shop of ``--days`` days (default 28) is generated; its first ``--train-days`` (20) are
ingested and trained on through the product path (``shoprec ingest``, ``shoprec train``, the
gate); then the remaining days are ingested, with no retraining. The champion is loaded as the
endpoint loads it (``serving.loading.load_engine``: the online store over the bundle's snapshot)
and, beside it, the same model answering from its snapshot alone. For every shopper with a
purchase or add-to-cart in the later days, both are asked for their top ``--k``:

- ``new_shoppers``: shoppers first seen in the later days, and the share answered personally
  (``fallback`` none) by each;
- ``bought_back``: answers that recommend an item the shopper bought or carted in the later days
  (the goal: none with the store);
- ``new_products``: then a catalogue batch of products the model never saw (copies of existing
  items' content under new ids) is ingested; per product, the share of shoppers whose planted
  category it has that get it in their top ``--k``, over the share for the other shoppers (the
  goal: at least 3x).

Prints one JSON object. Settings come from the environment; data and MLflow store live in a
fresh work directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHOPREC = str(Path(sys.executable).with_name("shoprec"))


def _run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([SHOPREC, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"shoprec {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--train-days", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--new-items", type=int, default=3, help="new products per category")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoprec-fresh-"))
    data, raw, later = work / "data", work / "raw", work / "later"
    env = os.environ | {"SHOPREC_PSEUDONYM_KEY": os.environ.get("SHOPREC_PSEUDONYM_KEY",
                                                                 "bench-key"),
                        "SHOPREC_DATA_DIR": str(data)}
    os.environ.update(env)
    try:
        _run("generate", "--out", str(raw), "--days", str(args.days), "--seed", str(args.seed),
             env=env)
        days = sorted((raw / "events").glob("*.csv"))
        later.mkdir()
        for day in days[args.train_days:]:
            shutil.move(day, later / day.name)
        _run("ingest", str(raw), "--source", "synthetic", env=env)
        started = time.perf_counter()
        trained = json.loads(_run("train", "--json", env=env))
        train_seconds = time.perf_counter() - started
        if not trained["gate"]["promoted"]:
            raise SystemExit(f"no champion to serve: {trained['gate']['reason']}")
        _run("ingest", str(later), "--source", "synthetic", env=env)
        added = _new_products(raw, work / "new-items", args.new_items)
        _run("ingest", str(work / "new-items"), "--source", "synthetic", env=env)
        print(json.dumps(_measure(data, args.k) | _new_product_hits(data, raw, added, args.k) | {
            "days": args.days, "train_days": args.train_days, "k": args.k,
            "train_seconds": round(train_seconds, 1),
            "gate": trained["gate"]["reason"]}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(data: Path, k: int) -> dict:
    from contracts.settings import Settings
    from contracts.tables import POSITIVE_EVENTS
    from pipelines.data.curated import read_table
    from pipelines.data.zones import DataDir
    from serving.loading import describe_served, load_engine

    settings = Settings(data_dir=data)
    info = describe_served(settings)
    live = load_engine(settings, info)
    frozen = load_engine(settings.with_values(shopper_store="off"), info)
    events = read_table(DataDir(data), "events")
    events = events[events["event_type"].isin(POSITIVE_EVENTS)]
    first = events.groupby("user_id")["timestamp"].min()
    cut = _window_end(info.window_end)  # the end of what the model was trained on
    recent = events[events["timestamp"] > cut]
    bought = {u: set(g) for u, g in recent.groupby("user_id")["item_id"]}
    new = [u for u in bought if first[u] > cut]

    async def answers(engine) -> dict[str, object]:
        return {u: await engine.recommend(u, k, explain=False, pseudonymised=True)
                for u in bought}

    out = {"shoppers_active_later": len(bought), "new_shoppers": len(new)}
    for name, engine in (("store", live), ("snapshot", frozen)):
        pages = asyncio.run(answers(engine))
        personal = [u for u in new if pages[u].fallback is None]
        back = [u for u in bought
                if {i["item_id"] for i in pages[u].items} & bought[u]]
        out[name] = {"new_shoppers_personal_share": len(personal) / len(new) if new else None,
                     "answers_with_an_item_bought_back": len(back),
                     "share_bought_back": len(back) / len(bought) if len(bought) else None}
    return out


def _new_products(raw: Path, folder: Path, per_category: int):
    """A catalogue batch of products the model never saw: copies of existing items' content
    (category, brand, price) under new ids and titles, ``per_category`` of each category."""
    import pandas as pd

    items = pd.read_csv(raw / "items.csv")
    picked = items.groupby("category").head(per_category)
    added = picked.assign(item_id=[f"NEW{i:05d}" for i in range(len(picked))],
                          title="New " + picked["title"].astype(str))
    folder.mkdir(parents=True, exist_ok=True)
    added.to_csv(folder / "items.csv", index=False)
    return added


def _new_product_hits(data: Path, raw: Path, added, k: int) -> dict:
    """Per new product, the share of shoppers whose planted category it has that get it in
    their top ``k``, over the same share for the other shoppers."""
    from contracts.pseudonyms import Pseudonymiser
    from contracts.settings import Settings
    from serving.loading import describe_served, load_engine

    settings = Settings(data_dir=data)
    engine = load_engine(settings, describe_served(settings))
    truth = json.loads((raw / "ground_truth.json").read_text())["users"]
    pseudonym = Pseudonymiser(settings.require_pseudonym_key())
    new_ids = set(added["item_id"])
    category = dict(zip(added["item_id"], added["category"], strict=True))

    async def tops() -> dict[str, set[str]]:
        out = {}
        for raw_id in truth:
            page = await engine.recommend(pseudonym.one(raw_id), k, explain=False,
                                          pseudonymised=True)
            out[raw_id] = {i["item_id"] for i in page.items if i["item_id"] in new_ids}
        return out

    shown = asyncio.run(tops())
    matching, other = [], []
    for raw_id, prefs in truth.items():
        for item in new_ids:
            (matching if prefs["category"] == category[item] else other).append(
                item in shown[raw_id])
    rate, base = float(np.mean(matching)), float(np.mean(other))
    return {"new_products": {
        "added": len(new_ids), "served_model_knows": int(engine.rec.is_new.sum()),
        "marked_new_in_answers": all(bool(engine.rec.is_new[engine.rec.item_index[i]])
                                     for i in new_ids),
        "hit_rate_matching": round(rate, 4), "hit_rate_other": round(base, 4),
        "matching_over_other": round(rate / base, 2) if base else None}}


def _window_end(value: str):
    import pandas as pd

    moment = pd.Timestamp(value)
    return moment.tz_convert("UTC") if moment.tzinfo else moment.tz_localize("UTC")


if __name__ == "__main__":
    main()
