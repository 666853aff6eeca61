"""Same-window evaluation: every model the gate weighs, scored on one evaluation window.

A recorded metric from another window says little about which model is better now, so at every
gate decision the candidate, the serving champion (re-scored from its registered bundle, nothing
unpickled) and the baselines (popularity, EASE with the λ ``pipelines.steps.baselines`` chooses)
answer the same question on the run's ``validation.Split``. Each figure comes with a bootstrap
interval over shoppers (``pipelines.evaluation.bootstrap``), each comparison is paired on the
same shoppers, and slices (new vs returning shoppers, new vs older items, top categories) show
where a model wins. ``shoprec evaluate`` prints the same object.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts.settings import Settings
from pipelines.data.features import FeatureSet, lineage, load_features
from pipelines.evaluation.bootstrap import Resamples
from pipelines.evaluation.metrics import (
    accuracy_per_user,
    catalogue_coverage,
    per_user_metrics,
    popularity_bias_per_list,
)
from pipelines.evaluation.splits import K_VALUES, Split, gate_split, validation_split
from pipelines.steps.baselines import FAMILIES, baseline, baseline_topk
from pipelines.tracking.runs import mlflow_key

log = logging.getLogger(__name__)
SLICE_K = 10  # slices report the accuracy metrics at this k
HISTORY_BUCKETS = ((0, 0), (1, 4), (5, 19), (20, None))  # items bought before the window
TOP_CATEGORIES = 3
ACCURACY = ("recall", "ndcg", "map", "hit_rate")
SELECTION = "@selection"  # a model's lists on the selection slice, beside its gate-slice ones


@dataclass
class Window:
    """The evaluation problem and what every model is judged against on it: ``split`` is the
    gate slice, which nothing was fitted or chosen on; ``selection``, when the feature set
    keeps a gate slice apart, the earlier slice the candidates were chosen on, scored too so the
    optimism the gate slice removes is on record."""

    features: FeatureSet
    split: Split
    data_hash: str
    selection: Split | None = None

    @property
    def users(self) -> int:
        return len(self.split.rows)

    def describe(self) -> dict[str, Any]:
        """What the window is; ``split`` says how it was cut ("time", or "per_shopper": each
        shopper's latest events, ``start`` then being the earliest of them); ``start`` is the
        gate slice's, ``selection_start`` the selection slice's when there is one."""
        features = self.features
        start = features.gate_time if features.gate is not None else features.split_time
        return {"start": str(start), "end": str(features.window[1]),
                "split": features.split_kind, "data_hash": self.data_hash,
                "items": int(features.spec.items.size),
                "test_items": int(sum(len(t) for t in self.split.test_sets))} | (
            {"selection_start": str(features.split_time),
             "selection_users": len(self.selection.rows)} if self.selection is not None else {})


def load_window(features_uri: str) -> Window:
    """The gate's window of a feature set: its gate slice (and its selection slice beside)."""
    features = load_features(features_uri)
    selection = validation_split(features) if features.gate is not None else None
    return Window(features, gate_split(features), lineage(features_uri)[1], selection)


@dataclass
class WindowEvaluation:
    """Every model's figures on one window, as ``shoprec evaluate --json`` prints them."""

    window: dict[str, Any]
    users: int
    models: dict[str, dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    paired: dict[str, dict[str, Any]]
    model_uris: dict[str, str] = field(default_factory=dict)
    # The pairs on the selection slice (``users``, ``paired``): on record, not decided on.
    selection: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # e.g. why a model was not scored

    def to_json(self) -> dict[str, Any]:
        return {"window": self.window, "users": self.users, "models": self.models,
                "baselines": self.baselines, "paired": self.paired,
                "model_uris": self.model_uris, "notes": self.notes,
                "selection": self.selection}

    def value(self, model: str, metric: str) -> float | None:
        """A model's or baseline's point value; None on a window without shoppers."""
        figures = self.models.get(model) or self.baselines[model]
        return figures[metric]["value"]

    def best_baseline(self, metric: str) -> str:
        """The stronger baseline on ``metric`` (ties: the first, popularity): the gate's floor."""
        return max(self.baselines,
                   key=lambda name: self.baselines[name][metric]["value"] or -math.inf)


def baseline_topks(settings: Settings, window: Window
                   ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each baseline's top lists on the window, configured as the baselines step configures it
    (EASE's λ chosen on the training window, restricted or not), and a phrase saying how: the
    gate quotes it as the floor it compared with. With a selection slice, the lists on it are
    under ``<family>@selection``."""
    topks, described = {}, {}
    for family in FAMILIES:
        model, params = baseline(family, settings, window.features, window.split)
        topks[family] = _padded(baseline_topk(model, window.split, max(K_VALUES)))
        if window.selection is not None:
            topks[f"{family}{SELECTION}"] = _padded(
                baseline_topk(model, window.selection, max(K_VALUES)))
        described[family] = "most bought items" if family == "popularity" else (
            f"λ={float(params['lambda']):g}" + (
                f", restricted to the {params['restricted_to_top_items']} most popular of "
                f"{params['catalogue_items']} items" if "restricted_to_top_items" in params
                else ""))
    return topks, described


def _padded(topk: np.ndarray, k: int = max(K_VALUES)) -> np.ndarray:
    """``topk`` with k columns: a catalogue smaller than k leaves slots to the unknown item 0,
    never a hit, as in ``model_topk``."""
    out = np.zeros((topk.shape[0], k), np.int64)
    out[:, : min(k, topk.shape[1])] = topk[:, :k]
    return out


def model_topk(recommender, window: Window, k: int = max(K_VALUES),
               split: Split | None = None) -> np.ndarray:
    """A model's top k for every judged shopper, in the window's item ids.

    The model may come from another window (the champion): its items are translated by item id
    both ways, items it does not know count as never bought before, and items the window does not
    know become the unknown item 0, which is never a hit. Shoppers are asked for as the model
    serves them: with the histories it was packaged with. ``split``: another slice of the
    window's feature set (the selection slice) instead of the gate's.
    """
    split, spec = split or window.split, window.features.spec
    ours = np.array(spec.items.values, dtype=object)
    theirs = recommender.spec.items
    seen = [theirs.lookup(ours[s]) for s in split.seen()]
    query = recommender.features_for_many([split.users[r] for r in split.rows])
    items, scores = recommender.top_k(query, seen, k)
    named = np.asarray(recommender.item_ids, dtype=object)[np.where(np.isfinite(scores), items, 0)]
    mapped = spec.items.lookup(named.ravel()).reshape(named.shape).astype(np.int64)
    return _padded(np.where(np.isfinite(scores), mapped, 0), k)


def _figures(per_user: Mapping[str, np.ndarray], resamples: Resamples) -> dict[str, Any]:
    return {name: resamples.interval(values).to_json() for name, values in per_user.items()}


def _model_figures(window: Window, topk: np.ndarray) -> dict[str, Any]:
    """Every metric with its interval, beyond-accuracy ones included, and the slices."""
    features, split = window.features, window.split
    categories = np.eye(features.spec.categories.size, dtype=np.float32)[features.table.category]
    popularity = features.table.popularity
    per_user = per_user_metrics(topk, split.test_sets, K_VALUES, item_popularity=popularity,
                                item_features=categories)
    for k in K_VALUES:
        per_user[f"popularity_bias@{k}"] = popularity_bias_per_list(topk[:, :k], popularity)
    out = _figures(per_user, Resamples(window.users))
    for k in K_VALUES:  # a property of the whole set of lists: no per-shopper interval
        out[f"coverage@{k}"] = {"value": catalogue_coverage(topk[:, :k], features.spec.items.size),
                                "ci95": None}
    out["users"] = window.users
    out["slices"] = _slices(window, topk)
    return out


def _slices(window: Window, topk: np.ndarray) -> dict[str, dict[str, Any]]:
    """Accuracy at ``SLICE_K`` on parts of the window: shoppers by how much they bought before
    it, held-out items new in the window (no purchase before it) or older, top categories."""
    split, table, spec = window.split, window.features.table, window.features.spec
    history = np.diff(split.train[split.rows].indptr)
    before = np.asarray(split.train.sum(axis=0)).ravel() > 0
    parts: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for low, high in HISTORY_BUCKETS:
        rows = (history >= low) & (history <= (np.inf if high is None else high))
        label = "new" if high == 0 else f"{low}+" if high is None else f"{low}-{high}"
        parts[f"shoppers:{label}"] = (rows, [t for t, r in zip(split.test_sets, rows,
                                                                strict=True) if r])
    everyone = np.ones(len(split.rows), dtype=bool)
    parts["items:new"] = (everyone, [t[~before[t]] for t in split.test_sets])
    parts["items:older"] = (everyone, [t[before[t]] for t in split.test_sets])
    held_out = np.concatenate(split.test_sets) if split.test_sets else np.zeros(0, np.int64)
    counts = np.bincount(table.category[held_out], minlength=spec.categories.size)
    for category in np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]:
        if counts[category] and category:
            parts[f"category:{spec.categories.values[category]}"] = (
                everyone, [t[table.category[t] == category] for t in split.test_sets])
    out: dict[str, dict[str, Any]] = {}
    for name, (rows, tests) in parts.items():
        accuracy = accuracy_per_user(topk[rows], tests, SLICE_K)
        users = len(accuracy["ndcg"])
        out[name] = {"users": users} | _figures(
            {f"{m}@{SLICE_K}": accuracy[m] for m in ACCURACY}, Resamples(users))
    return out


def _paired(split: Split, topks: Mapping[str, np.ndarray], a: str, b: str) -> dict[str, Any]:
    """``a - b`` per accuracy metric, paired on the split's shoppers."""
    tests, resamples = split.test_sets, Resamples(len(split.rows))
    out: dict[str, Any] = {}
    for k in K_VALUES:
        first, second = (accuracy_per_user(topks[m], tests, k) for m in (a, b))
        out |= {f"{m}@{k}": resamples.paired(first[m], second[m]).to_json() for m in ACCURACY}
    return out


def evaluate_window(
    window: Window,
    models: Mapping[str, np.ndarray],
    baselines: Mapping[str, np.ndarray],
    pairs: Sequence[tuple[str, str]],
    metric: str,
) -> WindowEvaluation:
    """Figures for every model and baseline, and the paired differences: ``pairs`` among the
    models, and each model against the best baseline on ``metric`` (named ``best_baseline``
    in ``paired`` keys as ``<model>-<baseline>``). Lists named ``<name>@selection`` (on the
    window's selection slice) go only into ``selection``: the same pairs there."""
    chosen_on = {name.removesuffix(SELECTION): topk for name, topk in
                 (dict(models) | dict(baselines)).items() if name.endswith(SELECTION)}
    models = {name: topk for name, topk in models.items() if not name.endswith(SELECTION)}
    baselines = {n: topk for n, topk in baselines.items() if not n.endswith(SELECTION)}
    scored = {name: _model_figures(window, topk) for name, topk in models.items()}
    floors = {name: _model_figures(window, topk) for name, topk in baselines.items()}
    evaluation = WindowEvaluation(window.describe(), window.users, scored, floors, {})
    best = evaluation.best_baseline(metric)
    topks = dict(models) | dict(baselines)
    wanted = [*pairs, *((name, best) for name in models)]
    evaluation.paired = {f"{a}-{b}": _paired(window.split, topks, a, b) for a, b in wanted}
    if window.selection is not None:
        evaluation.selection = {"users": len(window.selection.rows), "paired": {
            f"{a}-{b}": _paired(window.selection, chosen_on, a, b) for a, b in wanted
            if a in chosen_on and b in chosen_on}}
    return evaluation


def table_rows(evaluation: WindowEvaluation) -> list[dict[str, Any]]:
    """One row per model (or pair), slice and metric: the CSV artifact next to the JSON."""
    rows = []
    groups = [("model", evaluation.models), ("baseline", evaluation.baselines),
              ("paired", evaluation.paired)]
    for kind, named in groups:
        for name, figures in named.items():
            parts = {"all": figures} | figures.get("slices", {})
            for part, values in parts.items():
                for metric, figure in values.items():
                    if not isinstance(figure, dict) or "value" not in figure:
                        continue
                    low, high = figure["ci95"] or (None, None)
                    rows.append({"kind": kind, "name": name, "slice": part, "metric": metric,
                                 "value": figure["value"], "ci95_low": low, "ci95_high": high,
                                 "users": values.get("users", evaluation.users)})
    return rows


def log_evaluation(run_id: str, evaluation: WindowEvaluation) -> None:
    """Every figure onto the candidate's run: the headline metrics at ``SLICE_K`` as
    ``gate.<model>.<metric>`` (with ``.ci_low``/``.ci_high``), so the compare view shows the
    champion re-scored beside the candidate, the same pairs on the selection slice as
    ``gate.selection.<pair>.<metric>``, and all of it as ``gate/evaluation.json`` and
    ``gate/evaluation.csv``."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    metrics = {"gate.users": float(evaluation.users)}
    for row in table_rows(evaluation):
        if (row["slice"] != "all" or row["value"] is None
                or not row["metric"].endswith(f"@{SLICE_K}")):
            continue
        key = mlflow_key(f"gate.{row['name']}.{row['metric']}")
        metrics[key] = row["value"]
        if row["ci95_low"] is not None:
            metrics[f"{key}.ci_low"], metrics[f"{key}.ci_high"] = row["ci95_low"], \
                row["ci95_high"]
    for pair, figures in evaluation.selection.get("paired", {}).items():
        for name, figure in figures.items():
            if name.endswith(f"@{SLICE_K}") and figure["value"] is not None:
                key = mlflow_key(f"gate.selection.{pair}.{name}")
                metrics[key] = figure["value"]
                if figure["ci95"] is not None:
                    metrics[f"{key}.ci_low"], metrics[f"{key}.ci_high"] = figure["ci95"]
    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()])
    client.log_dict(run_id, evaluation.to_json(), "gate/evaluation.json")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["kind", "name", "slice", "metric", "value",
                                                "ci95_low", "ci95_high", "users"])
    writer.writeheader()
    writer.writerows(table_rows(evaluation))
    client.log_text(run_id, buffer.getvalue(), "gate/evaluation.csv")


def evaluate_models(settings: Settings, model_uris: Sequence[str] = ()) -> WindowEvaluation:
    """``shoprec evaluate``: the given models (default: the champion and the latest challenger)
    and the baselines on the current window of the settings' data, each model paired with every
    later one and with the best baseline. Raises ``LookupError`` (one line) for a model that
    cannot be found or loaded."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from contracts import registry
    from contracts.pyfunc import load_logged
    from pipelines.steps.features import build_features_step

    registry.configure(settings)
    named = {uri: uri for uri in model_uris}
    if not named:
        found = registry.aliases(MlflowClient(), settings.model_name)
        named = {alias: f"models:/{settings.model_name}/{found[alias]}"
                 for alias in (registry.CHAMPION, registry.CHALLENGER) if alias in found}
        if not named:
            raise LookupError(f"{settings.model_name!r} has neither a champion nor a challenger: "
                              "train one first, or name models with --model-uri")
    try:
        window = load_window(build_features_step(settings))
    except ValueError as err:  # no accepted batches, no events: said in one line
        raise LookupError(str(err)) from err
    topks = {}
    for name, uri in named.items():
        try:
            topks[name] = model_topk(load_logged(uri), window)
        except (MlflowException, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise LookupError(f"cannot load {uri} as a shoprec model: {first}") from err
    floors, _ = baseline_topks(settings, window)
    names = list(topks)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    evaluation = evaluate_window(window, topks, floors, pairs, settings.gate.metric)
    evaluation.model_uris = named
    return evaluation
