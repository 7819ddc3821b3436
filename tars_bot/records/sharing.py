"""Sharing an execution: its branch and journal pushed to a remote, journals fetched from one.

A remote branch holding commits tars-bot did not make (`journal.made_by_tars`) is never
overwritten or deleted; one made by any execution of the same improvement (such as one a
later execution superseded) is. The outcome index travels with the journals and follows them.
"""

from __future__ import annotations

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Execution
from tars_bot.records import journal, outcomes


def push(repo: Repo, execution_id: str, remote: str, token: str | None) -> Execution:
    """Push the branch and the journal of a succeeded execution, or of a parked one (up to its
    gate: the run that resumes it, maybe on another runner, fetches both)."""
    record = journal.Record.resume(repo, execution_id)
    execution = record.execution
    shareable = execution.state in ("succeeded", "parked")
    if not shareable or not execution.branch or not execution.head_commit:
        raise TarsError(f"execution {execution_id} is {execution.state}: nothing to push")
    branch_ref = f"refs/heads/{execution.branch}"
    theirs = repo.remote_refs(remote, token).get(branch_ref)
    if theirs not in (None, execution.head_commit) and not journal.made_by_tars(
        repo, theirs, improvement=execution.improvement
    ):
        raise TarsError(
            f"{remote} has {execution.branch} at {theirs[:10]}, with commits tars-bot did not "
            "make; not overwriting it. Move that branch or merge it first."
        )
    record.update(pushed_to=remote)  # before: recorded intent
    specs = [f"+{branch_ref}:{branch_ref}", *journal.refspecs(execution_id)]
    repo.push(remote, specs, token)
    return record.execution


def update_remote(repo: Repo, execution: Execution, old_tip: str | None, token: str | None) -> None:
    """After a rollback of a pushed execution: its remote branch deleted (or moved to where the
    rollback left it) when it is still where tars-bot left it, and the journal pushed."""
    remote, branch_ref = execution.pushed_to or "origin", f"refs/heads/{execution.branch}"
    theirs = repo.remote_refs(remote, token).get(branch_ref)
    specs = journal.refspecs(execution.id)
    if theirs is not None and (
        theirs == old_tip or journal.made_by_tars(repo, theirs, improvement=execution.improvement)
    ):
        deleted = execution.state == "rolled_back"
        specs.append(f":{branch_ref}" if deleted else f"+{branch_ref}:{branch_ref}")
    repo.push(remote, specs, token)


def fetch_branch(repo: Repo, execution: Execution, remote: str, token: str | None) -> None:
    if not execution.branch:
        raise TarsError(f"execution {execution.id} has no branch")
    ref = f"refs/heads/{execution.branch}"
    repo.fetch(remote, [f"+{ref}:{ref}"], token)


def fetch_journal(repo: Repo, remote: str, token: str | None) -> None:
    """Bring the executions recorded elsewhere (e.g. by CI) into this repository."""
    spec = f"+{journal.EXECUTIONS}*:{journal.EXECUTIONS}*"
    repo.fetch(remote, [spec], token)
    outcomes.reconcile(repo, journal.heads(repo))  # the index follows
