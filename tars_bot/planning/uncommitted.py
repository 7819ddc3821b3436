"""A warning when the files a plan is judged on differ in the working tree from the commit it
is judged against: `plan`, `check` and `execute` read the files the steps change, the config
and the noxfile at that commit, so an uncommitted edit is otherwise silently not seen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tars_bot import errors
from tars_bot.planning import actions

if TYPE_CHECKING:
    from tars_bot.git import Repo
    from tars_bot.models import Improvement

ALWAYS = ("pyproject.toml", "noxfile.py")  # the config and the checks, read at the commit
NAMED = 5  # files named in the warning; the rest are counted


def inputs(improvement: Improvement | None) -> list[str]:
    """The paths (relative to the root) whose committed content the judgement depends on. Not
    the improvement file: it is read from the working tree, so its changes are seen."""
    paths = list(ALWAYS)
    for step in improvement.steps if improvement else []:
        try:
            paths += actions.static_paths(step.action) or []
        except actions.ActionProblem:
            continue  # the planner reports it
    return paths


def warn(repo: Repo, base: str, improvement: Improvement | None = None) -> list[str]:
    """Warn (one line on stderr) of the inputs that differ from `base` in the working tree;
    returns them. Reads only those files; changes nothing."""
    try:
        commit, _ = repo.resolve(base)
    except errors.TarsError:
        return []  # the planner says what is wrong with the base
    changed = repo.uncommitted(inputs(improvement), commit)
    if changed:
        more = f" and {len(changed) - NAMED} more" if len(changed) > NAMED else ""
        errors.warn(
            f"uncommitted changes to {', '.join(changed[:NAMED])}{more}: judged against {base} "
            f"({commit[:10]}), not the working tree"
        )
    return changed
