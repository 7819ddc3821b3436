"""Measured benefits (before vs after) and public API compatibility, base tree vs tip."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import griffe

from tars_bot.config import Config
from tars_bot.execution.sandbox import Jail, Sandbox, open_sandbox
from tars_bot.git import Repo
from tars_bot.models import Benefit, BenefitResult, Limits

_NUMBER = re.compile(rb"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class MeasureError(Exception):
    """The benefit's command failed or printed no number."""


def _sample(benefit: Benefit, jail: Jail, sandbox: Sandbox, limits: Limits) -> float:
    proc = sandbox.run(benefit.command, jail, limits.step_timeout, limits.memory_mb)
    if proc.exit_code != 0 or proc.timed_out:
        raise MeasureError(f"benefit {benefit.name!r}: command exited with {proc.exit_code}")
    if benefit.measure == "wall_time":
        return proc.duration_s
    if benefit.measure == "peak_memory":
        return proc.peak_memory_mb
    numbers = _NUMBER.findall(proc.output)
    if not numbers:
        raise MeasureError(f"benefit {benefit.name!r}: the command printed no number")
    return float(numbers[-1])


def measure(
    benefit: Benefit, before_dir: Path, after_dir: Path, repo: Repo, config: Config, limits: Limits
) -> BenefitResult:
    """Run the command `repeat` times on each tree, alternating, and compare the medians."""
    sandbox = open_sandbox(config, repo)
    # each in its worktree, which it may write (caches): nothing else
    jails = [
        Jail.worktree_of(where, network=config.allow_network) for where in (before_dir, after_dir)
    ]
    before, after = [], []
    for _ in range(benefit.repeat):
        before.append(_sample(benefit, jails[0], sandbox, limits))
        after.append(_sample(benefit, jails[1], sandbox, limits))
    median_before, median_after = statistics.median(before), statistics.median(after)
    change = (median_after - median_before) / median_before if median_before else 0.0
    met = None
    if benefit.target is not None:
        target = float(benefit.target.rstrip("%")) / 100
        met = change <= target if target < 0 else change >= target
    return BenefitResult(
        name=benefit.name,
        measure=benefit.measure,
        expected=benefit.target,
        before=round(median_before, 6),
        after=round(median_after, 6),
        change=round(change, 4),
        met=met,
        required=benefit.required,
    )


def _load(package: str, root: Path) -> griffe.Object | griffe.Alias:
    return griffe.load(
        package,
        search_paths=[root / "src", root],
        try_relative_path=False,
        allow_inspection=False,  # read the code, never import (run) it
        modules_collection=griffe.ModulesCollection(),
        lines_collection=griffe.LinesCollection(),
    )


def api_breakages(package: str, before_dir: Path, after_dir: Path) -> list[str]:
    """Breaking changes of `package`'s public API between the two trees, explained."""
    try:
        old = _load(package, before_dir)
    except ImportError:
        return []  # a package the base did not have cannot break
    try:
        new = _load(package, after_dir)
    except ImportError:
        return [f"{package}: the package was removed"]
    return [breakage.explain() for breakage in griffe.find_breaking_changes(old, new)]
