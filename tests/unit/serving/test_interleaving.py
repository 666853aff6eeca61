"""Team-Draft Interleaving's properties: each team in its own order, balanced credits, a seed
gives one list, and neither team is favoured by the coin."""

from __future__ import annotations

import random

import pytest

from serving.interleaving import CANDIDATE, STABLE, team_draft

A = [f"a{i}" for i in range(20)]
B = [f"b{i}" for i in range(20)]


def _items(merged: list[tuple[str, int]], team: int) -> list[str]:
    return [item for item, owner in merged if owner == team]


def _is_subsequence(part: list[str], ranking: list[str]) -> bool:
    position = iter(ranking)
    return all(item in position for item in part)


@pytest.mark.parametrize("seed", range(50))
def test_each_team_keeps_its_own_order_and_credits_stay_within_one(seed: int) -> None:
    rng = random.Random(seed)
    first = rng.sample(A + B, 15)
    second = rng.sample(A + B, 15)  # overlapping rankings, in different orders

    merged = team_draft(first, second, 10, random.Random(seed))

    assert len(merged) == 10
    assert len({item for item, _ in merged}) == 10
    assert _is_subsequence(_items(merged, STABLE), first)
    assert _is_subsequence(_items(merged, CANDIDATE), second)
    for end in range(1, 11):  # within one at every place, equal after every full round
        gap = len(_items(merged[:end], STABLE)) - len(_items(merged[:end], CANDIDATE))
        assert abs(gap) <= 1 and (end % 2 or gap == 0)


def test_a_team_adds_its_highest_ranked_item_not_yet_shown() -> None:
    merged = team_draft(["x", "y", "z"], ["x", "w", "v"], 4, random.Random(3))
    shown = [item for item, _ in merged]
    # Whoever picks first takes "x"; the other team skips it and takes its next item.
    assert shown[0] == "x"
    assert shown[1] == ("w" if merged[0][1] == STABLE else "y")


def test_same_seed_same_list_and_the_coin_changes_with_it() -> None:
    lists = {tuple(team_draft(A, B, 10, random.Random(seed))) for seed in range(20)}
    assert team_draft(A, B, 10, random.Random(7)) == team_draft(A, B, 10, random.Random(7))
    assert len(lists) > 1


def test_fair_each_team_picks_first_half_of_the_time() -> None:
    rounds = 4000
    firsts = sum(team_draft(A, B, 2, random.Random(seed))[0][1] for seed in range(rounds))
    # Binomial(4000, 0.5): standard deviation about 32; five of them either way.
    assert abs(firsts - rounds / 2) < 160
    # Identical rankings: the team that picks first in a round takes the shared item, so each
    # team's credit is still a fair coin's.
    same = sum(team_draft(A, A, 1, random.Random(seed))[0][1] for seed in range(rounds))
    assert abs(same - rounds / 2) < 160


def test_length_is_k_or_every_distinct_item() -> None:
    assert len(team_draft(A[:3], B[:2], 10, random.Random(0))) == 5
    assert len(team_draft(A[:3], A[:3], 10, random.Random(0))) == 3
    assert team_draft(A, B, 0, random.Random(0)) == []
    assert team_draft([], [], 5, random.Random(0)) == []


def test_lists_of_different_length_let_the_longer_one_fill_up() -> None:
    merged = team_draft(A[:2], B, 6, random.Random(1))
    assert len(merged) == 6
    assert _items(merged, STABLE) == A[:2]
    assert _items(merged, CANDIDATE) == B[:4]


@pytest.mark.parametrize("empty_first", [True, False])
def test_one_empty_list_gives_the_other_in_order(empty_first: bool) -> None:
    first, second = ([], B) if empty_first else (A, [])
    merged = team_draft(first, second, 5, random.Random(2))
    team = CANDIDATE if empty_first else STABLE
    assert merged == [(item, team) for item in (second or first)[:5]]


def test_duplicates_within_a_list_are_skipped() -> None:
    merged = team_draft(["a", "a", "b", "a"], ["c", "c", "d"], 10, random.Random(4))
    assert sorted(item for item, _ in merged) == ["a", "b", "c", "d"]
    assert _items(merged, STABLE) == ["a", "b"]
    assert _items(merged, CANDIDATE) == ["c", "d"]


def test_negative_k_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        team_draft(A, B, -1, random.Random(0))
