"""A canary's online read-out from the logs, and its MLflow run on the candidate version.

The endpoint decides live on its in-memory read-out; this computes the same figures
(``contracts.readout``) offline from what it wrote down: the answers in the traffic log that
counted in the read-out (``contracts.traffic``), and the outcomes joined to them, each once
(``contracts.outcomes``), from the stage's start (the registry's ``rollout_stage_since``) on.
``shoprec rollout status`` shows it beside the endpoint's, and every canary stage ends with one
MLflow run holding the read-out that decided it, tagged with the candidate's version, so the
registry's history says why a version went on or came back. No Airflow import here.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from contracts import registry
from contracts.outcomes import outcomes_folder
from contracts.readout import INTERLEAVE, RATES, Readout
from contracts.settings import Settings
from contracts.traffic import PART_GLOB, traffic_folder

log = logging.getLogger(__name__)

VERSION_TAG = "shoprec.model_version"


def _parts(folder: Path, since: datetime) -> pd.DataFrame:
    """A log's rows from ``since`` on; empty without parts (days before ``since`` not read)."""
    files = [f for f in sorted(folder.glob(PART_GLOB)) if f.parent.name >= f"date={since:%Y-%m-%d}"]
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else \
        pd.DataFrame()
    if frame.empty or "in_readout" not in frame:
        return pd.DataFrame()
    frame = frame[pd.to_datetime(frame["time"], utc=True) >= pd.Timestamp(since)]
    return frame[frame["in_readout"].fillna(False).astype(bool)]


def from_logs(settings: Settings, stable: str, candidate: str,
              since: datetime) -> dict[str, Any] | None:
    """The read-out of ``candidate`` against ``stable`` since ``since`` from the endpoint's logs
    (None when no answer of theirs counted there yet). Interleaved when the answers say so."""
    answers = _parts(traffic_folder(settings), since)
    if answers.empty:
        return None
    answers = answers[answers["model_version"].astype(str).isin({stable, candidate})]
    if answers.empty:
        return None
    answers = answers.sort_values("time", kind="stable")
    interleaved = answers["credited"].map(lambda c: c is not None and len(c) > 0).any()
    readout = Readout(stable, candidate, INTERLEAVE if interleaved else "split")
    served: dict[str, str] = {}
    for row in answers.itertuples(index=False):
        credited = row.credited if row.credited is not None and len(row.credited) else None
        readout.impression(row.pseudonym, credited if credited is not None
                           else [str(row.model_version)])
        served[row.request_id] = row.pseudonym
    outcomes = _parts(outcomes_folder(settings), since)
    if not outcomes.empty:
        outcomes = outcomes[outcomes["request_id"].isin(served)].drop_duplicates(
            ["request_id", "item_id", "event_type"])  # counted once, as the endpoint did
        for row in outcomes.itertuples(index=False):
            revenue = None if pd.isna(row.revenue) else float(row.revenue)
            readout.outcome(served[row.request_id], str(row.model_version), row.event_type,
                            revenue)
    rules = settings.rollout
    return readout.summary(rules.outcome, rules.min_shoppers, rules.outcome_margin)


def readout_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The read-out as flat MLflow metrics (``canary.view_rate``, ``difference.low``, ...);
    figures not known yet are left out."""
    found: dict[str, float] = {"shoppers": summary["shoppers"]}
    for side in ("stable", "candidate"):
        arm = summary[side]
        found |= {f"{side}.shoppers": arm["shoppers"], f"{side}.impressions": arm["impressions"]}
        for name in RATES:
            found[f"{side}.{name}"] = arm["outcomes"][name]
            for bound, value in arm["rates"][name].items():
                found[f"{side}.{name}_rate" + ("" if bound == "estimate" else f".{bound}")] = value
        for bound, value in (arm["revenue_per_impression"] or {}).items():
            found[f"{side}.revenue_per_impression" + ("" if bound == "estimate" else
                                                      f".{bound}")] = value
    for bound, value in summary["difference"].items():
        found["difference" + ("" if bound == "estimate" else f".{bound}")] = value
    return {key: float(value) for key, value in found.items() if value is not None}


def log_readout(settings: Settings, version: str, stable: str, summary: dict[str, Any],
                verdict: str) -> str | None:
    """One MLflow run with the read-out that ended ``version``'s canary (``verdict``: passed,
    rolled_back, undecided); its run id, or None when MLflow could not take it (logged: the
    rollout's outcome stands either way)."""
    import mlflow

    from pipelines.tracking import runs as tracking

    try:
        registry.configure(settings)
        with tracking.start_run(settings.dataset, f"canary-readout-v{version}", tags={
                "shoprec.kind": "canary-readout", VERSION_TAG: version,
                "shoprec.stable_version": stable,
                "shoprec.canary_verdict": verdict, "shoprec.canary_mode": summary["mode"],
                "mlflow.note.content": summary["reason"]}) as run:
            mlflow.log_params({"outcome": summary["outcome"], "margin": summary["margin"],
                               "min_shoppers": summary["min_shoppers"], "mode": summary["mode"],
                               "model_name": settings.model_name})
            tracking.log_metrics(readout_metrics(summary))
            mlflow.log_text(json.dumps(summary, indent=2, default=str), "readout.json")
            return run.info.run_id
    except Exception as err:
        log.warning("could not log v%s's canary read-out to MLflow: %s: %s", version,
                    type(err).__name__, err)
        return None
