"""An execution after it ends: rolled back before a merge; merged or closed, suspected by a CI
run, reverted after a merge. States past `succeeded` are found on the default branch
(`landing.as_landed`) and journaled when GitHub or the history tells them."""

from __future__ import annotations

from typing import Any

from tars_bot.errors import TarsError
from tars_bot.execution import orchestrate
from tars_bot.git import Repo
from tars_bot.models import AFTER_MERGE, Execution, ExecutionPlan, Suspicion
from tars_bot.planning import planner
from tars_bot.records import journal, learning, outcomes, sharing
from tars_bot.rollback import landing, revert, undo


def roll_back(
    repo: Repo, execution_id: str, step: int | None, cascade: bool, token: str | None
) -> Execution:
    """Undo a whole execution, or one step (and, with cascade, the steps built on it).
    When the branch was pushed, the remote follows: its branch deleted, or updated."""
    before = journal.load(repo, execution_id)
    lived = landing.as_landed(repo, before, revert.default_tip(repo))
    if lived.state in AFTER_MERGE:
        raise TarsError(
            f"execution {execution_id} is {lived.state}: its change is on the default branch, "
            "so its rollback is a revert on a branch of its own (`tars-bot rollback` makes it)"
        )
    if before.is_rolled_back(step):
        return before  # idempotent: the caller says so
    if step is None:
        execution = undo.rollback_execution(repo, execution_id)
    else:
        execution = (
            before  # a process killed after the last revert left it so: finish the job
            if before.emptied
            else undo.rollback_steps(repo, execution_id, step, cascade=cascade)
        )
        if execution.emptied:
            # nothing of it is left: the execution is rolled back as a whole
            reason = f"every step reverted (the last by rollback of step {step})"
            execution = undo.rollback_execution(repo, execution_id, reason=reason)
    if execution.pushed_to and execution.branch:
        sharing.update_remote(repo, execution, before.head_commit, token)
    return execution


def status(repo: Repo, execution_id: str, onto: str | None) -> Execution:
    """The execution as journaled, its state carried on past `succeeded` (merged, reverted)
    by what the default branch (`onto`, or found) holds now."""
    return landing.as_landed(repo, journal.load(repo, execution_id), revert.default_tip(repo, onto))


def history(repo: Repo, limit: int | None, onto: str | None) -> list[Execution]:
    return landing.history(repo, revert.default_tip(repo, onto), limit)


def stats(repo: Repo, rebuild: bool) -> dict[str, Any]:
    """What the outcome index says of all executions (learning.summary); `rebuild` makes the
    index again from the journals first. Merges the default branch shows are journaled
    first, so that they count as merged."""
    if rebuild or outcomes.outdated(repo):
        outcomes.rebuild(repo, journal.heads(repo))
    record_merges(repo)
    return learning.summary(outcomes.totals(repo))


def record_merges(repo: Repo) -> list[str]:
    """Journal as merged the succeeded executions whose change the default branch holds;
    their ids."""
    tip = revert.default_tip(repo)
    if tip is None:
        return []
    merged = []
    for execution in journal.history(repo):
        found = landing.find(repo, execution, tip) if execution.state == "succeeded" else None
        if found is not None:
            journal.Record.resume(repo, execution.id).update(state="merged", landed=found)
            merged.append(execution.id)
    return merged


def record_landing(
    repo: Repo,
    execution_id: str,
    merge_commit: str | None,
    closed: bool,
    remote: str | None,
    token: str | None,
) -> Execution:
    """What GitHub says became of the execution's pull request: merged as `merge_commit`,
    or closed unmerged; the journal is pushed to `remote` when given."""
    record = journal.Record.resume(repo, execution_id)
    execution = record.execution
    if execution.state != "succeeded" or execution.landed is not None:
        return execution
    if merge_commit is not None:
        found = landing.find(repo, execution, merge_commit) or landing.from_merge_commit(
            repo, execution, merge_commit
        )
        if found is None:
            return execution
        return record.update(state="merged", landed=found, push_to=remote, token=token)
    if closed:
        return record.update(state="closed", push_to=remote, token=token)
    return execution


def landed_at(repo: Repo, commit: str, onto: str | None) -> Execution | None:
    """The merged execution whose change landed as `commit` on the default branch. Only
    the executions the commit points at are looked into: named in its message (rebased or
    squashed), its own head (a fast-forward), merged by it, or recorded as landed there."""
    tip = revert.default_tip(repo, onto)
    if tip is None or not repo.has_object(commit):
        return None
    merged = repo.parents(commit)[1:]
    named = repo.message(commit)
    for execution in journal.history(repo):
        head = execution.head_commit
        candidate = (
            (execution.landed is not None and execution.landed.commit == commit)
            or f"Tars-Execution: {execution.id}" in named
            or head == commit
            or (head is not None and any(repo.is_ancestor(head, p) for p in merged))
        )
        lived = landing.as_landed(repo, execution, tip) if candidate else None
        if lived is not None and lived.landed is not None and lived.landed.commit == commit:
            return lived
    return None


def note_suspicion(
    repo: Repo,
    execution_id: str,
    suspicion: Suspicion | None,
    remote: str | None,
    token: str | None,
) -> Execution:
    """Record (or clear) what a watched CI run says of a merged execution, with its
    landing, and push the journal to `remote` (None: keep it here)."""
    record = journal.Record.resume(repo, execution_id)
    lived = landing.as_landed(repo, record.execution, revert.default_tip(repo))
    return record.update(suspected=suspicion, landed=lived.landed, push_to=remote, token=token)


def mark_reverted(
    repo: Repo, execution_id: str, revert_id: str, remote: str | None, token: str | None
) -> None:
    """Record on a merged execution the execution that reverts it (pushed to `remote`)."""
    record = journal.Record.resume(repo, execution_id)
    lived = landing.as_landed(repo, record.execution, revert.default_tip(repo))
    record.update(landed=lived.landed, reverted_by=revert_id, push_to=remote, token=token)


def revert_plan(repo: Repo, execution_id: str, step: int | None, onto: str | None) -> ExecutionPlan:
    """The plan of the revert of a merged execution (or of its step), on the default
    branch as it is now: the same wherever the same history is."""
    ref = revert.default_branch(repo, onto)
    tip, _ = repo.resolve(ref)
    execution = landing.as_landed(repo, journal.load(repo, execution_id), tip)
    if execution.state == "reverted":
        raise TarsError(
            f"execution {execution_id} is already reverted by execution "
            f"{execution.reverted_by}; roll that one back to undo the revert"
        )
    if execution.landed is None:
        raise TarsError(
            f"execution {execution_id} is {execution.state}, not merged into {ref}: "
            "`tars-bot rollback` without a merge deletes its branch instead"
        )
    plan = journal.load_plan(repo, execution_id)
    improvement = revert.improvement(repo, execution, plan, execution.landed, tip, step)
    return planner.plan(repo, improvement, base_ref=ref, source=f"revert of {execution_id}")


def revert_merged(
    repo: Repo,
    execution_id: str,
    step: int | None,
    onto: str | None,
    progress: orchestrate.Progress | None,
    remote: str | None,
    token: str | None,
) -> orchestrate.ExecutionResult:
    """Undo a merged execution (or one step of it) on a new branch from the default branch:
    planned, executed and checked as any improvement is; never on the default branch. The
    original's journal, which names its revert, is pushed to `remote` when given."""
    plan = revert_plan(repo, execution_id, step, onto)
    result = orchestrate.execute(repo, plan, progress=progress, reverts=(execution_id, step))
    if result.success and step is None:
        mark_reverted(repo, execution_id, result.execution_id, remote, token)
    return result
