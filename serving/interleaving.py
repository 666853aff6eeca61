"""Team-Draft Interleaving: one list shown to a shopper, built from two models' rankings.

Comparing a candidate with the stable model by A/B split needs many shoppers per arm; showing
each shopper one list interleaved from both and crediting each click to the model ("team") that
contributed the item detects a preference with far less traffic (Radlinski, Kurup & Joachims
2008, "How does clickthrough data reflect retrieval quality?"; Chapelle, Joachims, Radlinski &
Yue 2012, "Large-scale validation and analysis of interleaved search evaluation").

Team draft: in each round a fair coin decides which team picks first; each team then adds its
highest-ranked item not yet in the list. The coin per round keeps the draft unbiased towards
either model whatever the rankings. This module is pure (no I/O, the randomness comes in as a
``random.Random``), so the endpoint and the offline read-out draw the same list under one seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

STABLE, CANDIDATE = 0, 1  # team numbers: ``first`` is the stable model, ``second`` the candidate


def team_draft(first: Sequence[str], second: Sequence[str], k: int,
               rng: random.Random) -> list[tuple[str, int]]:
    """Interleave two rankings into at most ``k`` distinct items, each with the team that
    picked it (0: ``first``, 1: ``second``).

    The result has ``min(k, distinct items of both lists)`` entries. Duplicates within a list are
    skipped like items already picked; when one team has nothing left, the other fills the
    remaining places in its own order (so one empty list returns the other's top ``k``, all
    credited to it). Each team's items appear in the order its ranking gives them.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    rankings = (list(first), list(second))
    target = min(k, len(set(rankings[0]) | set(rankings[1])))
    merged: list[tuple[str, int]] = []
    taken: set[str] = set()
    cursor = [0, 0]  # per team: how far down its ranking it has looked

    def pick(team: int) -> None:
        ranking = rankings[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in taken:
            cursor[team] += 1
        if cursor[team] < len(ranking):
            item = ranking[cursor[team]]
            taken.add(item)
            merged.append((item, team))

    while len(merged) < target:
        leader = rng.randrange(2)  # one coin per round, drawn even when a team has run dry
        for team in (leader, 1 - leader):
            if len(merged) < target:
                pick(team)
    return merged

