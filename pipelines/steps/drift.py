"""Drift and skew report: what moved under the served model, as Evidently reports, once per run.

Three Evidently 0.7 reports (current against reference, ``DataDriftPreset``: each column gets
Evidently's test for its type and size, p-values for small samples, distances for large ones):

- ``events``: the new batches against the training reference, one row per curated event:
  event type, category, unit price, quantity, hour of day, and how popular the item was in the
  reference (a shift towards new or other items);
- ``shoppers``: the same two windows, one row per shopper and active day: events, purchases and
  distinct items;
- ``served``: what the endpoint recommended (the traffic log of the last ``drift_recent_days``)
  against what shoppers bought in the reference: category mix, price, item popularity, plus
  Evidently's recommender metrics for both sides: average recommendation popularity (ARP),
  catalogue coverage and the Gini index of how concentrated they are.

The reference is the serving champion's training window (its run's ``data.window_*`` params);
the current data is every curated event after it. Without a champion (the first run) it is the
newest ``drift_recent_days`` of data against the earlier days. A part breaches when at least
``drift_max_share`` of its columns drift, or when served items are more than
``drift_popularity_ratio_max`` times as popular as bought ones; the breaches are the result's
``warnings``. HTML, ``summary.json`` and the metrics go under ``<data dir>/reports/drift/<time>/``
and to an MLflow run tagged with the champion it describes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import registry
from contracts.model_info import ModelInfo, describe
from contracts.settings import Settings
from contracts.storage import DataPath, write_atomic
from contracts.traffic import PART_GLOB, traffic_folder
from pipelines.data.curated import read_table
from pipelines.data.zones import DataDir, private_dir, write_json_atomic
from pipelines.tracking import runs as tracking

log = logging.getLogger(__name__)
TOP_K = 10  # the endpoint's default k: the recommender metrics look at each answer's top 10
MAX_ROWS = 100_000  # per side and report: a sample beyond this keeps the report fast
UNKNOWN = "(unknown)"
LATEST = "latest.json"  # <reports>/drift/latest.json names the newest report folder
MODEL_RUN_TAG = "shoprec.model_run_id"


class NothingToCompare(ValueError):
    """No curated events yet: there is no data to report on."""


@dataclass
class Part:
    """One report: how many rows each side had, which columns drifted, and its figures."""

    name: str
    rows: int
    reference_rows: int
    html: str | None = None
    drift_share: float | None = None
    drifted: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""  # why it was not compared, when it was not
    page: str | None = field(default=None, repr=False, compare=False)  # the HTML, for MLflow

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "page"}


@dataclass
class DriftResult:
    folder: str
    reference: str  # what the reference window is, in words
    parts: list[Part]
    warnings: list[str]
    run_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "reference": self.reference, "warnings": self.warnings,
                "run_id": self.run_id, "parts": [p.to_json() for p in self.parts]}

    def metrics(self) -> dict[str, float]:
        found = {f"{p.name}.{k}": v for p in self.parts for k, v in p.metrics.items()}
        found |= {f"{p.name}.drift_share": p.drift_share for p in self.parts
                  if p.drift_share is not None}
        return found | {"breaches": float(len(self.warnings))}


def drift_report(settings: Settings, now: datetime | None = None) -> DriftResult:
    """Compare the new batches and the served traffic with the training reference; write the
    HTML reports and summary, log them to MLflow, and return the figures and any breaches."""
    now = now or datetime.now(UTC)
    data = DataDir(settings.data_dir)
    events = read_table(data, "events")
    if events.empty:
        raise NothingToCompare(f"no curated events under {data.curated}: ingest some batches "
                               "first")
    folder = private_dir(data.reports / "drift" / f"{now:%Y-%m-%dT%H-%M-%S}")
    items = read_table(data, "items").drop_duplicates("item_id").set_index("item_id")
    events = events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True),
                           item_id=events["item_id"].astype(str))
    champion = _champion(settings)
    reference, current, described = _windows(events, champion, settings.drift.recent_days)
    served = _traffic(traffic_folder(settings), pd.Timestamp(now) - pd.Timedelta(
        days=settings.drift.recent_days))
    parts = [
        _compare("events", _event_rows(reference, items, reference),
                 _event_rows(current, items, reference), settings, folder),
        _compare("shoppers", _shopper_rows(reference), _shopper_rows(current), settings, folder),
        _served_part(served, reference, items, settings, folder),
    ]
    warnings = [w for p in parts for w in _breaches(p, settings)]
    result = DriftResult(str(folder), described, parts, warnings, None)
    result.run_id = _log_run(settings, result, champion)
    write_json_atomic(folder / "summary.json", result.to_json())
    write_json_atomic(folder.parent / LATEST, {"folder": str(folder), "run_id": result.run_id})
    for warning in warnings:
        log.warning("drift: %s", warning)
    return result


# ---- windows and rows -------------------------------------------------------------------------
def _champion(settings: Settings) -> ModelInfo | None:
    registry.configure(settings)
    uri = registry.champion_uri(settings.model_name)
    return describe(uri) if uri else None


def _utc(value: str) -> pd.Timestamp:
    moment = pd.Timestamp(value)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _windows(events: pd.DataFrame, champion: ModelInfo | None,
             recent_days: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(reference events, current events, what the reference is)."""
    moments = events["timestamp"]
    if champion is not None and champion.window_start and champion.window_end:
        start, end = _utc(champion.window_start), _utc(champion.window_end)
        return (events[(moments >= start) & (moments <= end)], events[moments > end],
                f"champion v{champion.version}'s training window {start:%Y-%m-%d %H:%M} to "
                f"{end:%Y-%m-%d %H:%M} UTC; current: every event after it")
    cut = moments.max() - pd.Timedelta(days=recent_days)
    return (events[moments <= cut], events[moments > cut],
            f"no champion yet: events up to {cut:%Y-%m-%d %H:%M} UTC; current: the "
            f"{recent_days} days after")


def _popularity(item_ids: pd.Series) -> pd.Series:
    """Each item's share of ``item_ids`` (0 for items not in it)."""
    return item_ids.value_counts(normalize=True)


def _event_rows(events: pd.DataFrame, items: pd.DataFrame,
                reference: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "event_type": events["event_type"].astype(str),
        "category": events["item_id"].map(items["category"]).fillna(UNKNOWN).astype(str),
        "unit_price": pd.to_numeric(events.get("unit_price"), errors="coerce"),
        "quantity": pd.to_numeric(events.get("quantity"), errors="coerce"),
        "hour": events["timestamp"].dt.hour.astype(float),
        "item_popularity": events["item_id"].map(_popularity(reference["item_id"])).fillna(0.0),
    })


def _shopper_rows(events: pd.DataFrame) -> pd.DataFrame:
    """Activity per shopper and active day: a unit that compares across windows of different
    lengths (per-shopper totals would grow with the window)."""
    days = events.assign(day=events["timestamp"].dt.floor("D"),
                         purchase=events["event_type"].eq("purchase"))
    counts = days.groupby(["user_id", "day"]).agg(
        events=("item_id", "size"), purchases=("purchase", "sum"),
        distinct_items=("item_id", "nunique"))
    return counts.astype(float).reset_index(drop=True)


def _traffic(folder: Path, since: pd.Timestamp) -> pd.DataFrame:
    """Served answers since ``since``, one row per served item: shopper, item, rank."""
    files = sorted(folder.glob(PART_GLOB))
    frames = [pd.read_parquet(f) for f in files if f.parent.name >= f"date={since:%Y-%m-%d}"]
    answers = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["time", "pseudonym", "items", "fallback"])
    answers = answers[pd.to_datetime(answers["time"], utc=True) >= since]
    lengths = answers["items"].map(len).to_numpy(dtype=int) if len(answers) else np.zeros(0, int)
    return pd.DataFrame({
        "user_id": np.repeat(answers["pseudonym"].astype(str).to_numpy(), lengths),
        "item_id": (np.concatenate([np.asarray(i, dtype=object) for i in answers["items"]])
                    if len(answers) else np.zeros(0, dtype=object)),
        "rank": np.concatenate([np.arange(1, n + 1) for n in lengths]) if len(answers)
        else np.zeros(0, int),
        "cold_start": np.repeat(answers["fallback"].notna().to_numpy(), lengths),
    })


def _item_rows(item_ids: pd.Series, items: pd.DataFrame, popularity: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "category": item_ids.map(items["category"]).fillna(UNKNOWN).astype(str).to_numpy(),
        "price": pd.to_numeric(item_ids.map(items["price"]), errors="coerce").to_numpy(),
        "item_popularity": item_ids.map(popularity).fillna(0.0).to_numpy(),
    })


# ---- Evidently --------------------------------------------------------------------------------
def _evidently():
    """Evidently's API, imported once a report is due (it takes seconds)."""
    import pandas.core.dtypes.common as dtypes

    # Compatibility shim, the only one: Evidently 0.7.23 imports
    # pandas.core.dtypes.common.infer_dtype_from_object, which pandas 3 removed. This is what the
    # function returned for the dtypes Evidently asks about. Drop it once Evidently stops asking.
    if not hasattr(dtypes, "infer_dtype_from_object"):
        def infer_dtype_from_object(dtype):
            return pd.api.types.pandas_dtype(dtype).type

        dtypes.infer_dtype_from_object = infer_dtype_from_object
    import evidently

    return evidently


def _compare(name: str, reference: pd.DataFrame, current: pd.DataFrame, settings: Settings,
             folder: DataPath, keys: tuple[str, ...] = (), extra: list | None = None,
             additional: dict | None = None, ranking: list | None = None) -> Part:
    """One DataDriftPreset report of ``current`` against ``reference`` over every column but
    the ``keys`` (plus ``extra`` metrics), saved as ``<folder>/<name>.html``."""
    part = Part(name, len(current), len(reference), note=_too_small(current, reference,
                                                                    settings))
    if part.note:
        return part
    current, reference = (_sample(f) for f in (current, reference))
    # A column empty on either side cannot be tested (e.g. prices a source does not carry).
    columns = [c for c in current if c not in keys
               and current[c].notna().any() and reference[c].notna().any()]
    evidently = _evidently()
    from evidently.presets import DataDriftPreset

    numerical = [c for c in columns if pd.api.types.is_numeric_dtype(current[c])]
    current, reference = (_plain(f, columns, numerical) for f in (current, reference))
    definition = evidently.DataDefinition(
        numerical_columns=numerical, categorical_columns=[c for c in columns if c not in numerical],
        ranking=ranking)
    report = evidently.Report(
        [DataDriftPreset(columns=columns, drift_share=settings.drift.max_share)] + (extra or []),
        include_tests=True)
    snapshot = report.run(evidently.Dataset.from_pandas(current, definition),
                          evidently.Dataset.from_pandas(reference, definition),
                          additional_data=additional)
    page = snapshot.get_html_str(as_iframe=False)
    part.html = str(write_atomic(folder / f"{name}.html", lambda out: out.write(page.encode())))
    part.page = page
    found = snapshot.dict()
    for metric in found["metrics"]:
        config, value = metric["config"], metric["value"]
        kind = config["type"].rpartition(":")[2]
        if kind == "DriftedColumnsCount":
            part.drift_share = float(value["share"])
        elif kind == "ValueDrift":
            part.metrics[f"{config['column']}.drift_score"] = float(value)
        elif kind == "PopularityBiasMetric":
            reference_value = snapshot.context.get_reference_metric_result(metric["id"]).value
            part.metrics |= {config["metric"]: float(value),
                             f"{config['metric']}_reference": float(reference_value)}
    part.drifted = sorted(
        t["metric_config"]["params"]["column"] for t in found["tests"]
        if t["metric_config"]["params"]["type"].endswith("ValueDrift") and t["status"] == "FAIL")
    return part


def _plain(frame: pd.DataFrame, columns: list[str], numerical: list[str]) -> pd.DataFrame:
    """The compared columns as NumPy float64 (NaN for missing) or plain strings: Evidently's
    statistics fail on pandas' nullable and Arrow-backed columns (e.g. curated ``Int64``)."""
    return frame.assign(**{c: frame[c].to_numpy(dtype="float64", na_value=np.nan)
                           if c in numerical else frame[c].astype(str).to_numpy(dtype=object)
                           for c in columns})


def _too_small(current: pd.DataFrame, reference: pd.DataFrame, settings: Settings) -> str:
    """Why two sides are too small to compare ("" when they are not)."""
    if min(len(current), len(reference)) >= settings.drift.min_rows:
        return ""
    return (f"not compared: {len(current)} current and {len(reference)} reference rows "
            f"(drift_min_rows is {settings.drift.min_rows})")


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(MAX_ROWS, random_state=0) if len(frame) > MAX_ROWS else frame


def _served_part(served: pd.DataFrame, reference: pd.DataFrame, items: pd.DataFrame,
                 settings: Settings, folder: DataPath) -> Part:
    """What was recommended against what shoppers bought in the reference window, plus
    Evidently's ARP, coverage and Gini for both (popularity counted on those purchases)."""
    bought = reference[reference["event_type"] == "purchase"]
    popularity = _popularity(bought["item_id"])
    recent = bought.sort_values("timestamp", ascending=False).drop_duplicates(
        ["user_id", "item_id"])
    # What shoppers bought, as if it were a recommendation list: each one's latest purchases.
    ranked = recent.assign(rank=recent.groupby("user_id").cumcount() + 1)
    ranked = ranked[ranked["rank"] <= TOP_K]
    keys = ("user_id", "item_id", "rank", "target")
    current, baseline = (
        _item_rows(frame["item_id"], items, popularity).assign(
            user_id=frame["user_id"].astype(str).to_numpy(),
            item_id=frame["item_id"].astype(str).to_numpy(),
            rank=frame["rank"].to_numpy(dtype=int), target=0)
        for frame in (served, ranked))
    note = _too_small(current, baseline, settings)
    if note:
        return Part("served", len(current), len(baseline), note=note)
    evidently = _evidently()
    from evidently.metrics import PopularityBiasMetric

    train = evidently.Dataset.from_pandas(bought[["user_id", "item_id"]].astype(str))
    part = _compare(
        "served", baseline, current, settings, folder, keys,
        extra=[PopularityBiasMetric(k=TOP_K, metric=m) for m in ("arp", "coverage", "gini")],
        additional={"current_train_data": train, "reference_train_data": train},
        ranking=[evidently.Recsys(user_id="user_id", item_id="item_id", prediction="rank",
                                  target="target", recommendations_type="rank")])
    part.metrics |= {"served_items": float(len(served)),
                     "cold_start_share": float(served["cold_start"].mean()) if len(served)
                     else 0.0}
    if part.metrics.get("arp_reference"):
        part.metrics["popularity_ratio"] = part.metrics["arp"] / part.metrics["arp_reference"]
    return part


def _breaches(part: Part, settings: Settings) -> list[str]:
    """The part's threshold breaches, each one line naming what moved."""
    found = []
    if part.drift_share is not None and part.drift_share >= settings.drift.max_share:
        found.append(f"{part.name}: {part.drift_share:.0%} of columns drifted "
                     f"({', '.join(part.drifted)}; drift_max_share "
                     f"{settings.drift.max_share:.0%}); see {part.html}")
    ratio = part.metrics.get("popularity_ratio")
    if ratio is not None and ratio > settings.drift.popularity_ratio_max:
        found.append(f"{part.name}: recommended items are {ratio:.1f}x as popular as what "
                     f"shoppers bought (drift_popularity_ratio_max "
                     f"{settings.drift.popularity_ratio_max:g}); see {part.html}")
    return found


def _log_run(settings: Settings, result: DriftResult, champion: ModelInfo | None) -> str:
    """One MLflow run per report, tagged with the champion it describes; the HTML and the
    summary as artifacts under ``drift/``."""
    import mlflow

    tags = {"shoprec.kind": "drift-report"}
    if champion is not None:
        tags |= {MODEL_RUN_TAG: champion.run_id, "shoprec.model_version": champion.version,
                 "data_hash": champion.data_hash}
    tags["mlflow.note.content"] = (f"Drift and skew report. Reference: {result.reference}. "
                                   + (" ".join(result.warnings) or "No threshold breached."))
    with tracking.start_run(settings.dataset, "drift-report",
                            {k: v for k, v in tags.items() if v is not None}) as run:
        tracking.log_metrics(result.metrics())
        mlflow.log_dict(result.to_json() | {"run_id": run.info.run_id}, "drift/summary.json")
        for part in result.parts:
            if part.page is not None:
                mlflow.log_text(part.page, f"drift/{part.name}.html")
    return run.info.run_id
