"""After the pull request: whether an execution's change reached the default branch, and how.

Found in git where the history says it: the branch tip merged (a merge commit) or fast-forwarded,
its commits rebased (each keeps its `Tars-Execution` and `Tars-Step` trailers, a step's heal
commit too), or squashed into
one commit whose message names the execution (GitHub's default squash message lists the squashed
commits' messages). A squash whose message was rewritten (GitHub's "pull request title and
description", `git merge --squash` with a message of its own) is found by patch identity: a
commit on the default branch whose change has the patch id of the execution's whole change
(base to tip); GitHub's pull request merge commit tells it too (`from_merge_commit`).
"""

from __future__ import annotations

from tars_bot.git import Repo
from tars_bot.models import LANDS, Execution, LandedCommit, Landing
from tars_bot.records import journal

SCAN_LIMIT = 20_000  # first-parent commits read for rebased or squashed copies
PATCH_SCAN_LIMIT = 1000  # commits since the base diffed for a squash by patch identity


def find(repo: Repo, execution: Execution, tip: str) -> Landing | None:
    """How `execution`'s change reached the history of `tip` (the default branch), if it did."""
    if execution.landed is not None:
        return execution.landed
    head = execution.head_commit
    if execution.state not in LANDS or execution.dry_run or head is None:
        return None
    if not repo.has_object(head) or not repo.has_object(tip):
        return None
    if repo.is_ancestor(head, tip):
        return _merged(repo, execution, head, tip)
    return _copied(repo, execution, tip) or _squashed(repo, execution, head, tip)


def as_landed(repo: Repo, execution: Execution, tip: str | None) -> Execution:
    """`execution` with the state it has after its pull request, by what the default branch
    (at `tip`) holds: merged when its change is there, reverted when its revert succeeded."""
    if execution.state == "succeeded" and tip is not None:
        found = find(repo, execution, tip)
        if found is not None:
            execution = execution.model_copy(update={"state": "merged", "landed": found})
    if execution.state == "merged" and execution.reverted_by:
        by = journal.load(repo, execution.reverted_by)
        if by.state in ("succeeded", "unvalidated", "merged"):
            execution = execution.model_copy(update={"state": "reverted"})
    return execution


def history(repo: Repo, tip: str | None, limit: int | None = None) -> list[Execution]:
    """The newest `limit` executions, newest first, each as landed on `tip`."""
    return [as_landed(repo, e, tip) for e in journal.history(repo, limit)]


def from_merge_commit(repo: Repo, execution: Execution, commit: str) -> Landing | None:
    """The landing GitHub reports (a merged pull request's `merge_commit_sha`), for a squash
    or rebase whose messages lost tars-bot's trailers."""
    if not repo.has_object(commit):
        return None
    parents = repo.parents(commit)
    if len(parents) > 1:
        return Landing(
            kind="merge",
            commit=commit,
            onto=parents[0],
            commits=[LandedCommit(step=None, commit=commit)],
            found_by="github",
        )
    return Landing(
        kind="squash",
        commit=commit,
        onto=parents[0] if parents else commit,
        commits=[LandedCommit(step=None, commit=commit)],
        found_by="github",
    )


def _merged(repo: Repo, execution: Execution, head: str, tip: str) -> Landing | None:
    """The tip is in the default branch's history: find where it joined the first-parent line."""
    for n, (commit, parents, _) in enumerate(repo.first_parent_walk(tip, execution.base_commit)):
        if commit == head:
            return Landing(
                kind="fast-forward",
                commit=head,
                onto=execution.base_commit,
                commits=_step_commits(execution),
            )
        joined = len(parents) > 1 and any(repo.is_ancestor(head, p) for p in parents[1:])
        if joined:
            return Landing(
                kind="merge",
                commit=commit,
                onto=parents[0],
                commits=[LandedCommit(step=None, commit=commit)],
            )
        if n >= SCAN_LIMIT:
            break
    return None


def _copied(repo: Repo, execution: Execution, tip: str) -> Landing | None:
    """Rebased commits (oldest first) or a squash commit naming the execution."""
    needle = f"Tars-Execution: {execution.id}"
    rebased: list[LandedCommit] = []
    oldest_parent = tip
    for n, (commit, parents, message) in enumerate(
        repo.first_parent_walk(tip, execution.base_commit)
    ):
        if needle in message:
            trailers = repo.trailers(commit)
            step = trailers.get("Tars-Step", "").partition("/")[0]
            own = trailers.get("Tars-Execution") == execution.id and step.isdigit()
            quoted = message.count(needle) > 1 or not own  # a squash lists several messages
            if quoted and not rebased:
                onto = parents[0] if parents else commit
                only = LandedCommit(step=None, commit=commit)
                return Landing(kind="squash", commit=commit, onto=onto, commits=[only])
            if own and "Tars-Revert-Of" not in trailers:
                rebased.append(LandedCommit(step=int(step), commit=commit))
            oldest_parent = parents[0] if parents else commit
        elif rebased:
            break  # past the run of rebased commits
        if n >= SCAN_LIMIT:
            break
    if not rebased:
        return None
    rebased.reverse()
    return Landing(kind="rebase", commit=rebased[-1].commit, onto=oldest_parent, commits=rebased)


def _squashed(repo: Repo, execution: Execution, head: str, tip: str) -> Landing | None:
    """A commit since the base whose change is the execution's whole change: a squash whatever
    its message says. Merge commits are passed over (their change is their branch's)."""
    wanted = repo.patch_id(execution.base_commit, head)
    if wanted is None:
        return None
    walk = repo.first_parent_walk(tip, execution.base_commit)
    for n, (commit, parents, _) in enumerate(walk):
        if n >= PATCH_SCAN_LIMIT:
            break
        if len(parents) == 1 and repo.patch_id(parents[0], commit) == wanted:
            only = LandedCommit(step=None, commit=commit)
            return Landing(kind="squash", commit=commit, onto=parents[0], commits=[only])
    return None


def _step_commits(execution: Execution) -> list[LandedCommit]:
    """Each applied step's commits: its own, then its heal's."""
    return [
        LandedCommit(step=s.number, commit=commit)
        for s in execution.steps
        if s.state == "applied"
        for commit in s.commits
    ]
