"""What one scenario of ``bench/online_rollout.py`` measured, and the benchmark's JSON object.

Apart from the bench script so each stays readable. Two sources per scenario: the endpoint's own
figures at the verdict (its rollback event, or the rollout's counts when the pipeline saw the
read-out pass), and a replay of the endpoint's traffic and outcome logs through a fresh
``contracts.readout.Readout``, event by event in time order, which says when the read-out would
first have decided with the product's ``min_shoppers`` floor and with lower floors: with a large
difference both A/B split and interleaving decide at the floor, and only a lower floor shows
how many shoppers the statistics alone needed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

GOAL_SECONDS, GOAL_RATIO = 600.0, 1 / 3
LOWER_FLOORS = (30, 10)  # replayed beside the product's floor


def _rule(reason: str) -> str:
    if "rate difference" in reason or "share difference" in reason:
        return "outcome"
    return "health" if ("error rate" in reason or "latency" in reason) else "none"


def _logs(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("date=*/part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else \
        pd.DataFrame()


def replay(local: Path, stable: str, candidate: str, mode: str, outcome: str, margin: float,
           floors: list[int]) -> dict[str, Any]:
    """Per floor, the first moment the replayed read-out decided: its decision, seconds from
    the first answer, shoppers served (driven), shoppers in the read-out (exposed: both arms in
    a split, the interleaved ones), answers; absent when it never decided."""
    from contracts.readout import INTERLEAVE, Readout

    answers, outcomes = _logs(local / "traffic"), _logs(local / "outcomes")
    if answers.empty:
        return {}
    answers = answers.assign(kind=0)
    if not outcomes.empty:
        outcomes = outcomes[outcomes["in_readout"].fillna(False).astype(bool)].assign(kind=1)
    rows = pd.concat([answers, outcomes], ignore_index=True)
    rows["time"] = pd.to_datetime(rows["time"], utc=True)
    rows = rows.sort_values(["time", "kind"], kind="stable")
    first, readout = rows["time"].iloc[0], Readout(stable, candidate, mode)
    driven: set[str] = set()
    served = 0
    found: dict[str, Any] = {}
    for row in rows.itertuples(index=False):
        if row.kind == 0:
            driven.add(row.pseudonym)
            served += 1
            if not bool(row.in_readout):
                continue
            credited = row.credited if row.credited is not None and len(row.credited) else None
            readout.impression(row.pseudonym, credited if credited is not None
                               else [str(row.model_version)])
        else:
            readout.outcome(row.pseudonym, str(row.model_version), row.event_type,
                            None if pd.isna(row.revenue) else float(row.revenue))
        for floor in floors:
            label = f"min_shoppers_{floor}"
            if label in found:
                continue
            _, shoppers, decision, reason = readout.verdict(outcome, floor, margin)
            if decision != "wait":
                exposed = shoppers if mode == INTERLEAVE else sum(
                    len(arm.sums) for arm in readout.arms)
                found[label] = {
                    "decision": decision, "seconds": round((row.time - first).total_seconds(), 1),
                    "driven_shoppers": len(driven), "exposed_shoppers": exposed,
                    "answers": served, "reason": reason}
        if len(found) == len(floors):
            break
    return found


def summarise(local: Path, settings, mode: str, share: float, case: str, stable: str,
              candidate: str, out: dict[str, Any], expected: str,
              shoppers: int) -> dict[str, Any]:
    """One scenario's figures at the verdict (the endpoint's), and its replay."""
    rules = settings.rollout
    figures = out.get("figures") or {}
    readout = figures.get("readout") or {}
    health = (figures.get("stable") or {}, figures.get("candidate") or {})
    answers = _logs(local / "traffic")
    first = pd.to_datetime(answers["time"], utc=True).min() if not answers.empty else None
    at = pd.Timestamp(out["at"]) if out.get("at") is not None else None
    if mode == "split":
        exposed = sum((readout.get(s) or {}).get("shoppers", 0) for s in ("stable", "candidate"))
        visits = health[0].get("requests", 0) + health[1].get("requests", 0)
    else:  # the stable model answers every shopper, the interleaved ones too
        exposed, visits = readout.get("shoppers", 0), health[0].get("requests", 0)
    return {
        "mode": mode, "share": share, "case": case, "stable": stable, "candidate": candidate,
        "expected": expected, "verdict": out.get("verdict"),
        "rule": _rule(out.get("reason", "")) if out.get("verdict") in ("pass", "roll_back")
        else None,
        "reason": out.get("reason"),
        "seconds": round((at - first).total_seconds(), 1) if first is not None and at else None,
        "driven_shoppers": min(visits, shoppers), "exposed_shoppers": exposed,
        "recommend_requests": visits, "candidate_requests": health[1].get("requests"),
        "outcomes_in_readout": {s: (readout.get(s) or {}).get("outcomes")
                                for s in ("stable", "candidate")},
        "rates": {s: {k: v.get("estimate") for k, v in ((readout.get(s) or {}).get("rates")
                                                         or {}).items()}
                  for s in ("stable", "candidate")},
        "difference": readout.get("difference"),
        "replay": replay(local, stable, candidate, mode, rules.outcome, rules.outcome_margin,
                         [rules.min_shoppers, *(f for f in LOWER_FLOORS
                                                if f < rules.min_shoppers)]),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def ratios(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Interleaving over the A/B split, per case and pair of shares: shoppers at the endpoint's
    verdict, and in the replay at each floor."""
    by = {(s["mode"], s["share"], s["case"]): s for s in scenarios}
    found = []
    for (mode, share, case), mixed in by.items():
        for split_share in sorted(s for m, s, c in by if m == "split" and c == case):
            if mode != "interleave":
                continue
            split = by[("split", split_share, case)]
            row = {"case": case, "interleave_share": share, "split_share": split_share,
                   "same_verdict": mixed["verdict"] == split["verdict"],
                   "exposed": _ratio(mixed["exposed_shoppers"], split["exposed_shoppers"]),
                   "driven": _ratio(mixed["driven_shoppers"], split["driven_shoppers"])}
            for label, ours in mixed["replay"].items():
                theirs = split["replay"].get(label) or {}
                row[f"exposed_{label}"] = _ratio(ours.get("exposed_shoppers"),
                                                 theirs.get("exposed_shoppers"))
            found.append(row)
    return found


def report(prepared: dict[str, Any], scenarios: list[dict[str, Any]],
           rules: dict[str, Any], simulator: dict[str, Any]) -> dict[str, Any]:
    found = ratios(scenarios)
    judged = [r for r in found if r["split_share"] == 0.5 and r["case"] in ("worse", "better")]
    issue = [s for s in scenarios if s["case"] in ("worse", "better")]
    return {
        "benchmark": "online_rollout", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "shop": prepared["shop"] | {k: prepared[k] for k in ("train_grid", "train_config")},
        "models": prepared["models"], "rules": rules, "simulator": simulator,
        "scenarios": scenarios, "ratios": found,
        "goals": {
            "verdicts_by_outcome_rule_within_10_min": bool(issue) and all(
                s["verdict"] == s["expected"] and s["rule"] == "outcome"
                and s["seconds"] is not None and s["seconds"] <= GOAL_SECONDS for s in issue),
            "judged_on": "shoppers in the read-out (exposed) at the endpoint's verdict, "
                         "interleaving against the 0.5 A/B split (both arms), worse and better",
            "interleave_at_most_a_third": bool(judged) and all(
                r["same_verdict"] and r["exposed"] is not None and r["exposed"] <= GOAL_RATIO
                for r in judged)},
    }
