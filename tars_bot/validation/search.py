"""The culprit search: which step's commit to probe next when a check fails on the tip.

Candidates are indices 0..n-1 of the step commits; the culprit is the first commit where the
check fails (it fails on the last one). Without weights this is plain bisection, probing the
midpoint. With weights (how likely each step is to be the culprit, from history), the probe is
chosen to minimise the expected number of runs, under a budget of at most one run more than
bisection would need in the worst case, so a wrong guess costs little.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

EXACT_LIMIT = 48  # candidates searched by exact dynamic programming; greedy above


def first_failing(n: int, fails: Callable[[int], bool], weights: Sequence[float] | None) -> int:
    """The first index in 0..n-1 at which `fails` holds, knowing it holds at n-1 and that once
    it holds it keeps holding. `fails` is called once per probe (a nox run)."""
    good, bad = -1, n - 1
    choose = _chooser(n, weights)
    while bad - good > 1:
        middle = choose(good, bad)
        if fails(middle):
            bad = middle
        else:
            good = middle
    return bad


def bisection_runs(n: int) -> int:
    """The most probes plain bisection needs among n candidates."""
    return math.ceil(math.log2(n)) if n > 1 else 0


def _chooser(n: int, weights: Sequence[float] | None) -> Callable[[int, int], int]:
    if not weights or len(weights) != n or n < 3 or sum(weights) <= 0:
        return lambda good, bad: (good + bad) // 2
    prefix = [0.0]
    for w in weights:
        prefix.append(prefix[-1] + max(w, 0.0) + 1e-9)  # no candidate is impossible
    budget = bisection_runs(n) + 1
    if n <= EXACT_LIMIT:
        return _exact(prefix, budget)
    return _greedy(prefix, budget)


def _exact(prefix: list[float], budget: int) -> Callable[[int, int], int]:
    """Probes of an optimal search tree: the expected number of runs is least, and no culprit
    takes more than `budget` runs."""

    def mass(good: int, bad: int) -> float:  # candidates good+1..bad
        return prefix[bad + 1] - prefix[good + 1]

    @functools.cache
    def best(good: int, bad: int, left: int) -> tuple[float, int]:
        """(expected runs times the interval's mass, the probe) with `left` runs allowed."""
        size = bad - good
        if size == 1:
            return 0.0, -1
        if left <= 0 or size > 2**left:
            return math.inf, -1
        found = (math.inf, -1)
        for middle in range(good + 1, bad):
            cost = (
                mass(good, bad) + best(good, middle, left - 1)[0] + best(middle, bad, left - 1)[0]
            )
            # ties go to the probe nearest the midpoint: plain bisection when weights are flat
            key = (round(cost, 9), abs(2 * middle - good - bad))
            if key < (round(found[0], 9), abs(2 * found[1] - good - bad)):
                found = (cost, middle)
        return found

    depth: dict[tuple[int, int], int] = {}

    def choose(good: int, bad: int) -> int:
        left = depth.get((good, bad), budget)
        middle = best(good, bad, left)[1]
        depth[(good, middle)] = depth[(middle, bad)] = left - 1
        return middle

    return choose


def _greedy(prefix: list[float], budget: int) -> Callable[[int, int], int]:
    """Split where the weight is halved, among probes that keep both sides within the budget."""
    depth: dict[tuple[int, int], int] = {}

    def choose(good: int, bad: int) -> int:
        left = depth.get((good, bad), budget)
        half = (prefix[good + 1] + prefix[bad + 1]) / 2
        room = 2 ** (left - 1)
        allowed = range(max(good + 1, bad - room), min(bad, good + room + 1))
        middle = min(allowed, key=lambda m: (abs(prefix[m + 1] - half), abs(2 * m - good - bad)))
        depth[(good, middle)] = depth[(middle, bad)] = left - 1
        return middle

    return choose
