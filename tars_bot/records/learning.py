"""What past executions teach: each execution's contribution to the totals (integer counters, so
a newer record of an execution replaces its older one exactly), a summary for `tars-bot stats`,
and a step's risk of breaking a check, explained factor by factor.

The risk model is naive Bayes on a few features of a step: its kind, the most specific path
prefix it touches that has history, its size (lines changed, where the action tells), and its
improvement's past. Each feature's failure
rate (smoothed towards the overall rate) moves the odds; the explanation lists each move.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tars_bot.models import (
    BROKE,
    OK,
    QUICK_CHECKS,
    EditAction,
    Execution,
    ExecutionPlan,
    PatchAction,
    PlannedStep,
    WriteAction,
)

Totals = dict[str, Any]  # nested dicts of ints
LINE_BUCKETS = (10, 100, 1000)
SUPPORT = 3  # steps of history a feature needs before it counts
SMOOTHING = 2.0  # pseudo-steps at the overall rate, added to each feature's counts


# -- contributions ---------------------------------------------------------------------------
def contribution(execution: Execution, plan: ExecutionPlan | None) -> Totals:
    """What one execution adds to the totals."""
    out: Totals = {}
    ran = execution.rolled_back_from or execution.state  # what its run ended in
    _add(out, ("executions", ran), 1)
    _add(out, ("weeks", _week(execution.started_at), _outcome(ran)), 1)
    if execution.rolled_back_from:
        _add(out, ("rolled_back_later",), 1)
    planned = {s.number: s for s in plan.steps} if plan else {}
    bad = {c.step for c in execution.culprits if c.step is not None}
    bad |= {s.number for s in execution.steps if s.state == "failed"}
    for step in execution.steps:
        if step.state in ("pending", "running"):
            continue
        spec = planned.get(step.number)
        paths = step.changed_files or (spec.files if spec and spec.files else [])
        for key in features(spec, paths, step.changed_lines, execution.improvement):
            _add(out, ("steps", *key, "n"), 1)
            if step.number in bad:
                _add(out, ("steps", *key, "bad"), 1)
        if step.heal is not None and step.heal.commit:
            _add(out, ("healed",), 1)
        for check in step.checks:
            _count_check(out, check.check, check.status, check.duration_s, check.cached)
    for check in execution.checks:
        _count_check(out, check.check, check.status, check.duration_s, check.cached)
    for culprit in execution.culprits:
        probes = [p for p in culprit.probes if p.commit != execution.head_commit]
        for probe in probes:
            _count_check(out, probe.check, probe.status, probe.duration_s, probe.cached)
        _add(out, ("search", "searches"), 1)
        _add(out, ("search", "runs"), culprit.runs)
        # checking each step's commit in turn runs up to the culprit's (all, then the base,
        # when the base fails already)
        each = culprit.step if culprit.step is not None else len(execution.steps) + 1
        _add(out, ("search", "each_runs"), each)
        _add(out, ("search", "ms"), _ms(culprit.duration_s))
    return out


def features(
    spec: PlannedStep | None, paths: Iterable[str], lines: int, improvement: str
) -> list[tuple[str, ...]]:
    """The keys a step is counted under: all, its improvement, size, kind, each path prefix."""
    keys: list[tuple[str, ...]] = [("all",), ("improvement", improvement)]
    keys.append(("lines", _bucket(lines)))
    if spec is not None:
        keys.append(("kind", spec.action.kind))
    keys += [("path", prefix) for prefix in sorted(prefixes(paths))]
    return keys


def prefixes(paths: Iterable[str]) -> set[str]:
    """Every directory (with a trailing /) and file a step touches: src/, src/pkg/, src/pkg/a.py.
    Globs count up to their first wildcard."""
    found = set()
    for path in paths:
        literal = path.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        parts = literal.split("/")
        for depth in range(1, len(parts)):
            found.add("/".join(parts[:depth]) + "/")
        if literal == path and parts[-1]:
            found.add(path)
    return found


def _count_check(out: Totals, check: str, status: str, seconds: float, cached: bool) -> None:
    if cached:
        _add(out, ("cache", "hits"), 1)
        _add(out, ("cache", "ms"), _ms(seconds))
        return
    _add(out, ("checks", check, "runs"), 1)
    _add(out, ("checks", check, "ms"), _ms(seconds))
    if status != "passed":
        _add(out, ("checks", check, status), 1)


def merge(totals: Totals, change: Totals, sign: int = 1) -> Totals:
    """`totals` plus (or minus) `change`; counters that reach zero are dropped, so the result
    does not depend on the order executions were added in."""
    out = dict(totals)
    for key, value in change.items():
        if isinstance(value, dict):
            inner = merge(out.get(key) or {}, value, sign)
            if inner:
                out[key] = inner
            else:
                out.pop(key, None)
        else:
            total = out.get(key, 0) + sign * value
            if total:
                out[key] = total
            else:
                out.pop(key, None)
    return out


def _add(out: Totals, key: tuple[str, ...], value: int) -> None:
    node = out
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = node.get(key[-1], 0) + value


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _bucket(lines: int) -> str:
    for limit in LINE_BUCKETS:
        if lines < limit:
            return f"<{limit}"
    return f">={LINE_BUCKETS[-1]}"


def _week(started_at: str) -> str:
    year, week, _ = datetime.fromisoformat(started_at).isocalendar()
    return f"{year}-W{week:02d}"


def _outcome(state: str) -> str:
    if state in OK:
        return "succeeded"
    if state in BROKE:
        return "failed"
    return state  # unvalidated, running, validating


# -- risk ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Factor:
    feature: str  # e.g. "path src/io/"
    steps: int
    bad: int
    ratio: float  # how much it multiplies the odds


@dataclass(frozen=True)
class Risk:
    step: int
    probability: float
    base: float  # the overall rate the factors start from
    factors: tuple[Factor, ...]

    def explain(self) -> str:
        if not self.factors:
            return f"{self.probability:.0%}: no history for this step's features; the overall rate"
        moves = "; ".join(
            f"{f.feature}: {f.bad} of {f.steps} broke a check (x{f.ratio:.2f})"
            for f in self.factors
        )
        return f"{self.probability:.0%} (overall {self.base:.0%}): {moves}"


def risks(plan: ExecutionPlan, totals: Totals) -> list[Risk] | None:
    """Each step's chance of breaking a check, from history; None without any."""
    steps = totals.get("steps", {})
    seen = steps.get("all", {})
    if not seen.get("n"):
        return None
    base = (seen.get("bad", 0) + 1) / (seen["n"] + 2)
    return [_risk(step, plan.improvement.id or "", steps, base) for step in plan.steps]


def _risk(step: PlannedStep, improvement: str, steps: Totals, base: float) -> Risk:
    paths = step.files if step.files is not None else step.scope
    lines = planned_lines(step)
    chosen: list[tuple[str, dict[str, int]]] = []
    for key in features(step, paths, lines or 0, improvement):
        if key[0] in ("all", "path") or (key[0] == "lines" and lines is None):
            continue
        counts = steps.get(key[0], {}).get(key[1], {})
        chosen.append((" ".join(key), counts))
    # the most specific path prefix with history stands for all the step's paths
    known = [
        (prefix, steps["path"][prefix])
        for prefix in prefixes(paths)
        if steps.get("path", {}).get(prefix, {}).get("n", 0) >= SUPPORT
    ]
    if known:
        prefix, counts = max(known, key=lambda item: (len(item[0]), item[0]))
        chosen.append((f"path {prefix}", counts))
    logit = _logit(base)
    factors = []
    for feature, counts in chosen:
        n, bad = counts.get("n", 0), counts.get("bad", 0)
        if n < SUPPORT:
            continue
        rate = (bad + SMOOTHING * base) / (n + SMOOTHING)
        move = _logit(rate) - _logit(base)
        logit += move
        factors.append(Factor(feature, n, bad, math.exp(move)))
    return Risk(step.number, round(1 / (1 + math.exp(-logit)), 4), round(base, 4), tuple(factors))


def planned_lines(step: PlannedStep) -> int | None:
    """The lines a step will change, as far as its action says."""
    action = step.action
    if isinstance(action, WriteAction):
        return action.content.count("\n") + 1
    if isinstance(action, EditAction):
        return action.search.count("\n") + action.replace.count("\n") + 2
    if isinstance(action, PatchAction):
        changed = [line for line in action.diff.splitlines() if line[:1] in ("+", "-")]
        return sum(not line.startswith(("+++", "---")) for line in changed)
    return None  # run and delete: the plan does not say


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def culprit_weights(risks: list[Risk]) -> list[float]:
    """The chance that each step is the first to break a check, given that one did."""
    weights, clean = [], 1.0
    for risk in sorted(risks, key=lambda r: r.step):
        weights.append(clean * risk.probability)
        clean *= 1 - risk.probability
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else weights


# -- the summary `tars-bot stats` shows ----------------------------------------------------------
def summary(totals: Totals, top: int = 10) -> dict[str, Any]:
    """A stable, JSON-ready digest of the totals."""
    states = totals.get("executions", {})
    done = sum(n for state, n in states.items() if state in OK or state in BROKE)
    ok = sum(n for state, n in states.items() if state in OK)
    steps = totals.get("steps", {})
    checks = totals.get("checks", {})
    search = totals.get("search", {})
    nox = [(name, c) for name, c in checks.items() if name not in QUICK_CHECKS]
    mean_ms = sum(c.get("ms", 0) for _, c in nox) / max(1, sum(c.get("runs", 0) for _, c in nox))
    saved_runs = search.get("each_runs", 0) - search.get("runs", 0)
    return {
        "executions": sum(states.values()),
        "by_state": dict(sorted(states.items())),
        "success_rate": round(ok / done, 4) if done else None,
        "steps": steps.get("all", {}).get("n", 0),
        "steps_that_broke_a_check": steps.get("all", {}).get("bad", 0),
        "failing_paths": _ranked(steps.get("path", {}), top),
        "failing_kinds": _ranked(steps.get("kind", {}), top),
        "failing_improvements": _ranked(steps.get("improvement", {}), top),
        "checks": [
            {
                "check": name,
                "runs": c.get("runs", 0),
                "failed": c.get("failed", 0),
                "errors": c.get("error", 0),
                "mean_s": round(c.get("ms", 0) / max(1, c.get("runs", 0)) / 1000, 3),
            }
            for name, c in sorted(checks.items())
        ],
        "culprit_search": {
            "searches": search.get("searches", 0),
            "runs": search.get("runs", 0),
            "runs_checking_each_step": search.get("each_runs", 0),
            "runs_saved": saved_runs,
            "seconds_saved": round(saved_runs * mean_ms / 1000, 1),
        },
        "cache": {
            "hits": totals.get("cache", {}).get("hits", 0),
            "seconds_saved": round(totals.get("cache", {}).get("ms", 0) / 1000, 1),
        },
        "healed_steps": totals.get("healed", 0),
        "rolled_back_later": totals.get("rolled_back_later", 0),
        "weeks": {w: dict(sorted(o.items())) for w, o in sorted(totals.get("weeks", {}).items())},
    }


def _ranked(counts: dict[str, dict[str, int]], top: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"name": name, "steps": c.get("n", 0), "broke": c.get("bad", 0)}
        for name, c in counts.items()
        if c.get("bad", 0)
    ]
    for row in rows:
        row["rate"] = round(row["broke"] / row["steps"], 4) if row["steps"] else None
    return sorted(rows, key=lambda r: (-r["broke"], -(r["rate"] or 0), r["name"]))[:top]
