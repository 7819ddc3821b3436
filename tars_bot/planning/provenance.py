"""Where a plan sealed with another key came from: it is believed only when it is exactly what
this repository plans of its improvement as committed at its base on the default branch."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tars_bot.config import parse_config
from tars_bot.git import Repo
from tars_bot.models import ExecutionPlan, Improvement
from tars_bot.planning import loader
from tars_bot.planning.planner import plan


def difference_from_here(repo: Repo, given: ExecutionPlan, trusted: str | None) -> str | None:
    """Where `given` differs from what this repository plans of its improvement as committed at
    its base, which must be on `trusted` (the default branch); None: nowhere. A plan sealed
    with another key is believed only this way."""
    base = given.base.commit
    if trusted is None or not repo.has_object(base) or not repo.is_ancestor(base, trusted):
        return f"its base {base[:10]} is not on the default branch"
    improvement_id = given.improvement.id or ""
    committed = committed_improvement(repo, base, improvement_id)
    if committed is None or not committed.steps:
        return f"improvement {improvement_id} with steps is not committed at its base {base[:10]}"
    ours = plan(repo, committed, base_ref=base).model_dump(mode="json", exclude={"digest", "seal"})
    theirs = given.model_dump(mode="json", exclude={"digest", "seal"})
    theirs["base"]["ref"] = base  # whatever the base was called where it was planned
    where = _first_difference(theirs, ours)
    if where is None:
        return None
    return f"its {where} is not what improvement {improvement_id} at {base[:10]} plans to"


def committed_improvement(repo: Repo, commit: str, improvement_id: str) -> Improvement | None:
    """The improvement file of `improvement_id` as committed at `commit`, if there is one."""
    _, tree = repo.resolve(commit)
    config = parse_config(repo.read(tree, "pyproject.toml"), f"pyproject.toml at {commit[:10]}")
    for suffix in loader.SUFFIXES:
        path = (PurePosixPath(config.improvements_dir) / f"{improvement_id}{suffix}").as_posix()
        if (data := repo.read(tree, path)) is not None:
            text = data.decode("utf-8", errors="replace")
            return loader.improvement_from_data(
                loader.parse_text(text, path, suffix), path, improvement_id
            )
    return None


def _first_difference(ours: Any, theirs: Any, where: str = "") -> str | None:
    """The first path (e.g. steps[1].scope, counted from 1) at which two JSON values differ."""
    if isinstance(ours, dict) and isinstance(theirs, dict) and ours.keys() == theirs.keys():
        parts = [(f"{where}.{key}".lstrip("."), ours[key], theirs[key]) for key in ours]
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        pairs = enumerate(zip(ours, theirs, strict=True), 1)
        parts = [(f"{where}[{i}]", a, b) for i, (a, b) in pairs]
    else:
        return None if ours == theirs else where or "content"
    found = (_first_difference(a, b, at) for at, a, b in parts)
    return next((at for at in found if at is not None), None)
