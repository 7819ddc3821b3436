"""The culprit search (validation/search.py) on its own: which probes it makes, and how many."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tars_bot.validation import search


def probes(n: int, culprit: int, weights: list[float] | None) -> tuple[int, list[int]]:
    """(what the search found, the indices it probed) when everything from `culprit` on fails."""
    probed: list[int] = []

    def fails(index: int) -> bool:
        probed.append(index)
        return index >= culprit

    return search.first_failing(n, fails, weights), probed


@pytest.mark.parametrize(("n", "runs"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4)])
def test_bisection_runs_is_the_ceiling_of_log2(n, runs):
    assert search.bisection_runs(n) == runs


def test_one_candidate_is_the_culprit_without_a_run():
    assert probes(1, 0, None) == (0, [])
    assert probes(1, 0, [1.0]) == (0, [])


@pytest.mark.parametrize("n", [2, 3, 7, 16, 33, 100])
def test_bisection_finds_every_culprit_within_its_bound(n):
    for culprit in range(n):
        found, probed = probes(n, culprit, None)
        assert found == culprit
        assert len(probed) <= search.bisection_runs(n)
        assert n - 1 not in probed  # the tip is known to fail: never run again
        assert len(set(probed)) == len(probed)


def test_bisection_probes_the_midpoint_first():
    assert probes(16, 11, None)[1] == [7, 11, 9, 10]
    assert probes(16, 0, None)[1] == [7, 3, 1, 0]


@pytest.mark.parametrize(
    "weights",
    [
        [1.0, 1.0],  # fewer than three candidates
        [1.0, 2.0, 3.0],  # not one weight per candidate
        [0.0, 0.0, 0.0, 0.0, 0.0],  # no information
        [-1.0, -2.0, 0.0, -1.0, -3.0],
    ],
)
def test_weights_that_say_nothing_give_plain_bisection(weights):
    n = 5 if len(weights) != 2 else 2
    for culprit in range(n):
        assert probes(n, culprit, weights) == probes(n, culprit, None)


def test_flat_weights_probe_as_bisection_does():
    for n in (5, 12, 30):
        for culprit in range(n):
            assert probes(n, culprit, [1.0] * n) == probes(n, culprit, None)


def test_a_likely_culprit_is_probed_first_and_found_in_two_runs():
    n, likely = 16, 12
    weights = [0.001] * n
    weights[likely] = 1.0
    found, probed = probes(n, likely, weights)
    assert found == likely
    assert probed[0] in (likely - 1, likely)  # its neighbour or itself, not the midpoint 7
    assert len(probed) <= 2 < search.bisection_runs(n)


def test_a_wrong_guess_costs_at_most_one_run_more_than_bisection():
    n = 16
    weights = [0.001] * n
    weights[12] = 1.0
    worst = max(len(probes(n, culprit, weights)[1]) for culprit in range(n))
    assert worst == search.bisection_runs(n) + 1


def test_beyond_the_exact_limit_the_greedy_search_keeps_the_budget():
    n = search.EXACT_LIMIT * 3
    weights = [float(i % 7) for i in range(n)]
    for culprit in range(n):
        found, probed = probes(n, culprit, weights)
        assert found == culprit
        assert len(probed) <= search.bisection_runs(n) + 1


@settings(deadline=None)  # timed by the machine's load, not by the search
@given(
    st.integers(min_value=1, max_value=120).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(min_value=0, max_value=n - 1),
            st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
        )
    )
)
def test_the_weighted_search_is_never_worse_than_bisection_plus_one(case):
    n, culprit, weights = case
    found, probed = probes(n, culprit, weights)
    assert found == culprit
    assert len(probed) <= search.bisection_runs(n) + 1
    assert all(0 <= i < n - 1 for i in probed)


@settings(deadline=None)  # timed by the machine's load, not by the search
@given(st.lists(st.floats(0.01, 1.0), min_size=3, max_size=12))
def test_weighted_search_costs_no_more_runs_on_average_than_bisection(weights):
    """Averaged over culprits drawn by the weights themselves, it is at least as good."""
    n, total = len(weights), sum(weights)

    def expected(given_weights: list[float] | None) -> float:
        return sum(w / total * len(probes(n, c, given_weights)[1]) for c, w in enumerate(weights))

    assert expected(weights) <= expected(None) + 1e-9
    assert math.isfinite(expected(weights))
