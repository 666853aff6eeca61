"""Which ``tf.distribute`` strategy trains the models: one process, or workers named by TF_CONFIG.

Multi-worker training follows the TensorFlow convention: every worker runs the same program with
``TF_CONFIG`` naming the cluster and its own task, e.g. for worker 1 of 2::

    {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 1}}

``infra/multiworker.py`` launches N such processes on one machine. Nothing here reads files or the
network: TF's own collective runtime is the only communication.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import tensorflow as tf

Mode = Literal["auto", "none", "multi_worker"]
MODES: tuple[str, ...] = ("auto", "none", "multi_worker")

_DEFAULT = tf.distribute.get_strategy()  # a process-wide singleton: no scope is entered yet
_multi_worker: tf.distribute.Strategy | None = None


def tf_config() -> dict:
    """The parsed ``TF_CONFIG`` (empty when unset)."""
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def cluster_size() -> int:
    """Workers (chief included) that ``TF_CONFIG`` names; 1 without one."""
    cluster = tf_config().get("cluster", {})
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process owns side effects (logging, saving): TF's chief convention.

    The task of type ``chief``, or worker 0 when the cluster names no chief; a process without
    ``TF_CONFIG``, or one that ``strategy`` (if given) does not distribute, is its own chief.
    """
    if strategy is not None and not is_distributed(strategy):
        return True
    config = tf_config()
    task = config.get("task", {})
    if not task:
        return True
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def strategy(mode: Mode = "auto") -> tf.distribute.Strategy:
    """The strategy for ``mode``: multi-worker when asked, or (auto) when TF_CONFIG names >1 worker.

    The multi-worker strategy is created once per process and reused: TensorFlow configures its
    collective ops once, so a second instance (e.g. for a second candidate) cannot be made.
    Create it early, before other TF work, as TensorFlow recommends.
    """
    global _multi_worker
    if mode not in MODES:
        raise ValueError(f"distribute mode must be one of {MODES}, not {mode!r}")
    if mode == "none" or (mode == "auto" and cluster_size() < 2):
        return _DEFAULT
    if _multi_worker is None:
        _multi_worker = tf.distribute.MultiWorkerMirroredStrategy()
    return _multi_worker


def is_distributed(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is a real one rather than TF's default (plain single-process)."""
    return strategy is not _DEFAULT


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Block until every worker reaches this point (a no-op in one process).

    An all-reduce is the barrier: it lets the chief prepare shared inputs (features on disk)
    before the other workers read them.
    """
    if is_distributed(strategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(lambda: tf.constant(1.0)), axis=None)
