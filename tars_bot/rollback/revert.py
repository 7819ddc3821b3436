"""Rolling back a merged execution: a revert planned on the default branch as it is now.

The revert is an improvement like any other (patch steps, the original's final checks), so it
runs, is journaled, published and rolled back as executions are. Its steps are the original
change undone by three-way merges against the current default branch: a merge or squash commit
as a whole (mainline 1), otherwise the steps' changes newest first, or one step's alone (a step's
change includes its heal commit).
A conflict with later work is refused with the files, before anything is made.
"""

from __future__ import annotations

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Execution, ExecutionPlan, Improvement, Landing, Step
from tars_bot.ui import untrusted

REMOTE_DEFAULTS = (
    "refs/remotes/origin/HEAD",
    "refs/remotes/origin/main",
    "refs/remotes/origin/master",
)
LOCAL_DEFAULTS = ("refs/heads/main", "refs/heads/master", "HEAD")  # HEAD: as CI checks it out


class RevertConflict(TarsError):
    """The default branch changed the same lines since the merge."""


def default_branch(repo: Repo, name: str | None = None) -> str:
    """The ref of the default branch: `name` (a branch, preferring its remote-tracking ref, as
    that is what was merged into), else origin's HEAD, main or master, else main or master,
    else what is checked out (a CI job's checkout of the default branch)."""
    if name:
        candidates: tuple[str, ...] = (f"refs/remotes/origin/{name}", f"refs/heads/{name}", name)
    else:
        candidates = REMOTE_DEFAULTS + LOCAL_DEFAULTS
    for ref in candidates:
        if repo.ref(ref) is not None:
            return ref
    raise TarsError(
        f"cannot tell the default branch ({name or 'no origin/HEAD, main or master'}); "
        "name it with --onto BRANCH"
    )


def default_tip(repo: Repo, onto: str | None = None) -> str | None:
    """The commit the default branch (`onto`, or found) is at; None when there is none to find."""
    try:
        return repo.resolve(default_branch(repo, onto))[0]
    except TarsError:
        if onto:
            raise
        return None  # no default branch to compare with: the journaled state stands


def revert_id(execution: Execution, step: int | None) -> str:
    return f"revert-{execution.id}" + (f"-step-{step}" if step is not None else "")


def improvement(
    repo: Repo,
    execution: Execution,
    plan: ExecutionPlan,
    landing: Landing,
    tip: str,
    step: int | None = None,
) -> Improvement:
    """The improvement that undoes `execution` (or its step `step`) on top of `tip`."""
    names = {s.number: s.name for s in plan.steps}
    tree = repo.tree_of(tip)
    steps: list[Step] = []
    for before, after, number in _changes(repo, execution, landing, step):
        label = f"step {number}" if number else f"the {landing.kind} commit {landing.commit[:10]}"
        undone, conflicts = repo.undo(after, before, tree)
        if undone is None:
            files = ", ".join(map(untrusted.path, conflicts))
            raise RevertConflict(
                f"cannot revert {label} of execution {execution.id}: the default branch changed "
                f"the same lines since: {files}. Nothing was made; revert it by hand, or revert "
                "the later change first."
            )
        paths = repo.changed_paths(tree, undone)
        if paths:
            name = f"revert {label}" + (f" ({names[number]})" if number in names else "")
            steps.append(Step(name=name, patch=repo.diff(tree, undone), scope=paths))
            tree = undone
    if not steps:
        raise TarsError(
            f"execution {execution.id}: the default branch no longer has its change; "
            "nothing to revert"
        )
    what = f"step {step} of " if step is not None else ""
    pull = f" ({execution.pull_request})" if execution.pull_request else ""
    return Improvement(
        id=revert_id(execution, step),
        title=f"Revert tars-bot: {plan.improvement.title}"
        + (f" (step {step})" if step is not None else ""),
        description=(
            f"Reverts {what}execution {execution.id}{pull}, merged as {landing.kind} "
            f"{landing.commit[:10]}."
        ),
        steps=steps,
        validation=plan.validation,
        on_failure="rollback",
    )


def _changes(
    repo: Repo, execution: Execution, landing: Landing, step: int | None
) -> list[tuple[str, str, int | None]]:
    """(commit before, commit after the change to undo, its step or None for a merge or squash
    commit), in the order to undo them. A step's change runs from its commit's parent to its
    last commit: its heal's, if healed."""
    applied = {s.number: s.commits for s in execution.steps if s.state == "applied" and s.commits}
    if step is not None:
        if step not in applied:
            known = ", ".join(map(str, applied)) or "none"
            raise TarsError(
                f"execution {execution.id} has no applied step {step} (applied: {known})"
            )
        numbers = [step]
    elif landing.kind in ("merge", "squash"):
        return [(repo.parents(landing.commit)[0], landing.commit, None)]
    else:
        numbers = sorted(applied, reverse=True)
    return [(repo.parents(applied[n][0])[0], applied[n][-1], n) for n in numbers]
