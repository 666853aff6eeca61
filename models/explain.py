"""Integrated gradients of the ranker's score over its named, embedded features.

Sundararajan et al. (2017): a feature's attribution is (x - x') times the gradient of the score
averaged along the straight path from a baseline x' to the input x. Summed over a feature's
dimensions it says how much that named feature moved the score away from the baseline's, and the
attributions add up to ``f(x) - f(x')`` (completeness), which is what lets a reason be checked.

The ids themselves are integers and cannot be differentiated: IG runs on the ranker's embedded
vectors (``embed``), and only ``head`` is differentiated. Embedding and all k items x path
points go through one concrete function as one batch, so explaining a page of recommendations
costs one call, one forward and one backward pass. Pure computation: no file or network I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol

import numpy as np
import tensorflow as tf

from models.ranking import PURCHASES, RANKING_FEATURES, WIDE

# "zero": all-zero embedded inputs. A mapping: one vector per named feature, e.g. the average
# shopper / average item (``average_baseline`` over ``TwoStageRecommender.typical_pairs``):
# scores then read "why this item rather than a typical one", and an all-zero embedding is not a
# value the model ever sees.
Baseline = Literal["zero"] | Mapping[str, np.ndarray]
# How the path integral is approximated, as Captum names them. Gauss-Legendre (Captum's default)
# is exact for polynomials of degree 2 * steps - 1: on the ranker's smooth (GELU) layers 8 nodes
# leave the same float32-level completeness error as 16 (and as 32 trapezoid steps would not),
# at 10 path points per pair instead of 18. Explain-check measures completeness with the same
# number on every trained model, so a model that needed more would show it there.
Method = Literal["gausslegendre", "trapezoid"]
STEPS = 8


class Explainable(Protocol):
    """What IG needs of a model: ids to per-feature vectors, and vectors to a logit."""

    def embed(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]: ...

    def head(self, embedded: dict[str, tf.Tensor]) -> tf.Tensor: ...


@dataclass(frozen=True)
class Explanation:
    """One (user, item) pair's score split over the ranker's named features."""

    score: float
    baseline_score: float
    attributions: dict[str, float]  # in the model's feature order
    # sum(attributions) - (score - baseline_score): the path integral's numerical error, as
    # Captum reports its convergence delta. Near 0 when ``steps`` is large enough.
    completeness_delta: float
    # The wide feature's attribution per past purchase, aligned with the ``purchases`` input
    # row it was explained with (padding slots 0): they sum to ``attributions["history_items"]``.
    # Empty when the model has no such feature.
    slots: tuple[float, ...] = ()

    def sorted_attributions(self) -> list[tuple[str, float]]:
        """Features from most to least in favour of the item (negative ones last)."""
        return list(self._ranked)

    @cached_property
    def _ranked(self) -> tuple[tuple[str, float], ...]:  # the reason and the answer both read it
        return tuple(sorted(self.attributions.items(), key=lambda kv: -kv[1]))


class IntegratedGradients:
    """IG for any model with ``embed`` and ``head`` (the DCN-v2 ranker, or a test double)."""

    def __init__(
        self,
        model: Explainable,
        baseline: Baseline = "zero",
        steps: int = STEPS,
        names: Sequence[str] = RANKING_FEATURES,
        method: Method = "gausslegendre",
    ) -> None:
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.model, self.steps, self.method, self.names = model, steps, method, tuple(names)
        alphas, weights = quadrature(method, steps)
        self._alphas, self._weights = tf.constant(alphas), tf.constant(weights)
        if isinstance(baseline, str):
            if baseline != "zero":
                raise ValueError(f"unknown baseline {baseline!r}: 'zero' or per-feature vectors")
            self.baseline: dict[str, tf.Tensor] | None = None
        else:
            missing = set(self.names) - set(baseline)
            if missing:
                raise ValueError(f"baseline lacks features {sorted(missing)}")
            self.baseline = {
                n: tf.constant(np.asarray(baseline[n], np.float32).reshape(-1)) for n in self.names
            }
            # The wide part's width varies with the shopper: its reference is "no item-item
            # evidence", one 0 broadcast over every past purchase.
            if WIDE in self.baseline:
                self.baseline[WIDE] = tf.zeros([1], tf.float32)
        # Traced on first use, when the feature widths (and id input shapes) are known, as
        # concrete functions: the fixed signatures (batch dimension None) mean any k reuses the
        # same graph, and a call skips tf.function's per-call signature matching.
        self._explain_ids: Any = None
        self._explain_vectors: Any = None

    # ---- public -----------------------------------------------------------------------------
    def explain(self, features: Mapping[str, Any]) -> list[Explanation]:
        """Explanations for k (user, item) pairs given as raw id inputs, one row per pair."""
        inputs = {k: _as_tensor(v) for k, v in features.items()}
        if self._explain_ids is None:
            signature = {k: tf.TensorSpec([None] * v.shape.rank if k == PURCHASES
                                          else [None, *v.shape[1:]], v.dtype)
                         for k, v in inputs.items()}
            self._explain_ids = tf.function(
                lambda ids: self._integrate(self.model.embed(ids)), input_signature=[signature]
            ).get_concrete_function()
        return self._explanations(*(t.numpy() for t in self._explain_ids(inputs)))

    def explain_embedded(self, embedded: Mapping[str, Any]) -> list[Explanation]:
        """Explanations for k pairs given as embedded inputs: a (k, d_f) array per feature."""
        return self._explanations(*self._attribute_all(embedded))

    def attribute(self, embedded: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw arrays: attributions (k, features), scores f(x) (k,), baseline scores f(x') (k,)."""
        return self._attribute_all(embedded)[:3]

    def _attribute_all(self, embedded: Mapping[str, Any]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x = {n: tf.convert_to_tensor(embedded[n], tf.float32) for n in self.names}
        if self._explain_vectors is None:
            signature = {n: tf.TensorSpec([None, None if n == WIDE else v.shape[-1]], tf.float32)
                         for n, v in x.items()}
            self._explain_vectors = tf.function(
                self._integrate, input_signature=[signature]).get_concrete_function()
        return tuple(t.numpy() for t in self._explain_vectors(x))  # type: ignore[return-value]

    def _explanations(self, attributions: np.ndarray, scores: np.ndarray,
                      baseline_scores: np.ndarray, slots: np.ndarray) -> list[Explanation]:
        """One ``Explanation`` per row; deltas in float64, as Captum sums them."""
        deltas = (attributions.astype(np.float64).sum(axis=1)
                  - (scores.astype(np.float64) - baseline_scores.astype(np.float64)))
        return [Explanation(score, base, dict(zip(self.names, row, strict=True)), delta,
                            tuple(slot))
                for row, score, base, delta, slot in zip(
                    attributions.tolist(), scores.tolist(), baseline_scores.tolist(),
                    deltas.tolist(), slots.tolist(), strict=True)]

    # ---- the traced core --------------------------------------------------------------------
    def _integrate(self, x: dict[str, tf.Tensor]
                   ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        points = tf.shape(self._alphas)[0]
        k = tf.shape(x[self.names[0]])[0]
        # Path points ordered alpha-major: row j * k + i is item i at alphas[j]; the first alpha
        # is 0 (the baseline) and the last 1 (the input), whose scores the answer reports.
        alphas = tf.repeat(self._alphas, k)[:, None]
        base, diff, path = {}, {}, {}
        for n in self.names:
            base[n] = tf.zeros_like(x[n]) if self.baseline is None \
                else tf.broadcast_to(self.baseline[n][None, :], tf.shape(x[n]))
            diff[n] = x[n] - base[n]
            path[n] = tf.tile(base[n], [points, 1]) + alphas * tf.tile(diff[n], [points, 1])
        with tf.GradientTape() as tape:
            tape.watch(path)
            logits = tf.reshape(self.model.head(path), [-1])
        # Rows are independent (no batch statistics at inference), so the gradient of the sum is
        # each row's own gradient.
        # Features the head does not read (excluded) get zero gradients, hence zero attribution.
        grads = tape.gradient(logits, path, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        columns = []
        slots = tf.zeros([k, 0], tf.float32)
        for n in self.names:
            g = tf.reshape(grads[n], [points, k, -1])
            average = tf.tensordot(self._weights, g, axes=1)  # the quadrature's weighted mean
            columns.append(tf.reduce_sum(diff[n] * average, axis=-1))
            if n == WIDE:  # one attribution per past purchase: each its own
                slots = diff[n] * average
        logits = tf.reshape(logits, [points, k])
        return tf.stack(columns, axis=1), logits[-1], logits[0], slots


def quadrature(method: Method, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Path positions in [0, 1], starting at 0 and ending at 1, and weights summing to 1 (the
    end points weigh 0 under Gauss-Legendre: they are there for the two scores)."""
    if method == "trapezoid":
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps + 1, dtype=np.float32), weights.astype(np.float32)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas = np.concatenate([[0.0], (nodes + 1) / 2, [1.0]])
        return alphas.astype(np.float32), np.concatenate([[0.0], weights / 2, [0.0]]).astype(
            np.float32)
    raise ValueError(f"unknown method {method!r}: 'gausslegendre' or 'trapezoid'")


def average_baseline(
    model: Explainable, features_sample: Mapping[str, Any], batch_size: int = 4096
) -> dict[str, np.ndarray]:
    """Mean embedded vector per feature over a sample of (user, item) pairs (raw id inputs).
    The wide part's width varies with the shopper: its entry is one 0 (no item-item evidence)."""
    n = len(next(iter(features_sample.values())))
    if n == 0:
        raise ValueError("the baseline needs at least one (user, item) pair")
    totals: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        part = {k: _as_tensor(np.asarray(v)[start : start + batch_size])
                for k, v in features_sample.items()}
        for name, value in model.embed(part).items():
            if name == WIDE:
                totals[name] = np.zeros(1)
                continue
            chunk = np.asarray(value, np.float64).sum(axis=0)
            totals[name] = totals[name] + chunk if name in totals else chunk
    return {name: (total / n).astype(np.float32) for name, total in totals.items()}


def _as_tensor(value: Any) -> tf.Tensor:
    """Integer ids as int32 (the models' id dtype), anything else as float32."""
    array = np.asarray(value)
    dtype = tf.int32 if np.issubdtype(array.dtype, np.integer) else tf.float32
    return tf.constant(array, dtype)
