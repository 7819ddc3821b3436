"""Rollback Manager: undo a whole execution or some of its steps, verify, recover from crashes.

Every rollback first journals its intent (`pending`), then acts, then journals the outcome, so a
process killed at any instant leaves something `recover` can complete.
"""

from __future__ import annotations

import shutil

from tars_bot import faults
from tars_bot.errors import TarsError
from tars_bot.execution import processes, workspace
from tars_bot.git import Repo
from tars_bot.models import Execution, ExecutionPlan, RunAction, StepResult
from tars_bot.planning import actions
from tars_bot.records import journal, outcomes
from tars_bot.rollback import cascading

USER_REFS = ("refs/heads/", "refs/tags/")


def _user_refs(repo: Repo, except_branch: str | None) -> dict[str, str]:
    refs = {name: target for prefix in USER_REFS for name, target in repo.refs(prefix).items()}
    refs.pop(f"refs/heads/{except_branch}", None)
    return refs


def _refuse_if_checked_out(repo: Repo, execution: Execution) -> None:
    """Moving or deleting a branch someone has checked out would change their checkout."""
    where = repo.checked_out_at(f"refs/heads/{execution.branch}") if execution.branch else None
    if where is not None:
        raise TarsError(
            f"branch {execution.branch} is checked out in {where}; switch that checkout to "
            "another branch first (tars-bot never changes your checkout)"
        )


def _refuse_unless_rollbackable(execution: Execution) -> None:
    if execution.dry_run:
        raise TarsError(f"execution {execution.id} was a dry run: it left nothing to roll back")
    if execution.state == "rolled_back":
        raise TarsError(f"execution {execution.id} is already rolled back")
    if execution.in_flight:
        raise TarsError(
            f"execution {execution.id} is still {execution.state} (pid {execution.pid} on "
            f"{execution.host}); if that process is gone, run `tars-bot recover`"
        )


def delete_branch(repo: Repo, execution: Execution) -> None:
    """Delete the execution's branch, unless it moved to a commit tars-bot did not make."""
    ref = f"refs/heads/{execution.branch}"
    tip = repo.ref(ref)
    if tip is None:
        return
    # made by this execution (or its base): safe to drop
    ours = tip in (execution.base_commit, execution.head_commit)
    if not ours and not journal.made_by_tars(repo, tip, execution=execution.id):
        raise TarsError(
            f"branch {execution.branch} has moved to {tip[:10]}, a commit tars-bot did not make; "
            "rolling back would lose it. Move or delete the branch yourself first."
        )
    repo.update_ref(ref, None, tip)


def rollback_execution(
    repo: Repo, execution_id: str, *, recovering: bool = False, reason: str | None = None
) -> Execution:
    """Delete the branch and any worktree; the journal keeps the tip reachable. Verified."""
    record = journal.Record.resume(repo, execution_id)
    execution = record.execution
    if not recovering:
        _refuse_unless_rollbackable(execution)
    _refuse_if_checked_out(repo, execution)
    before = _user_refs(repo, execution.branch)
    with journal.lock(repo, execution.improvement, f"rollback-{execution.id}"):
        return _rollback_locked(repo, record, before, reason)


def _rollback_locked(
    repo: Repo, record: journal.Record, before: dict[str, str], reason: str | None
) -> Execution:
    """The rollback itself, for a caller that holds the improvement's lock."""
    execution = record.execution
    # a kept execution rolled back afterwards: its run still ended as it did
    record.update(
        pending="rollback",
        failure_reason=reason or execution.failure_reason,
        rolled_back_from=execution.state if execution.kept else execution.rolled_back_from,
    )
    if execution.branch:
        delete_branch(repo, execution)
    faults.point("mid-rollback")
    repo.remove_worktree(execution.id, workspace.worktree_path(repo, execution.id))
    done = record.update(
        state="rolled_back", pending=None, finished_at=execution.finished_at or journal.now()
    )
    verify_full_rollback(repo, done, before)
    return done


def supersede(repo: Repo, branch: str, new_execution_id: str) -> str | None:
    """Roll back the succeeded execution whose branch `branch` still is, so that a new
    execution (holding the improvement's lock) can take the branch over. Returns its id."""
    tip = repo.ref(f"refs/heads/{branch}")
    previous = next(
        (e for e in journal.history(repo) if e.branch == branch and e.head_commit == tip),
        None,
    )
    # an expired one kept its branch for the user, as a succeeded one does: superseded too
    if tip is None or previous is None or previous.dry_run:
        return None
    if previous.state not in ("succeeded", "expired"):
        return None
    _refuse_if_checked_out(repo, previous)
    record = journal.Record.resume(repo, previous.id)
    reason = f"superseded by execution {new_execution_id}"
    _rollback_locked(repo, record, _user_refs(repo, branch), reason)
    return previous.id


def verify_full_rollback(repo: Repo, execution: Execution, user_refs: dict[str, str]) -> None:
    problems = []
    if execution.branch and repo.ref(f"refs/heads/{execution.branch}") is not None:
        problems.append(f"branch {execution.branch} still exists")
    journal_head = repo.ref(journal.EXECUTIONS + execution.id)
    if journal_head is None or not repo.is_ancestor(execution.base_commit, journal_head):
        problems.append(f"base {execution.base_commit[:10]} is not reachable from the journal")
    if (
        execution.id in repo.worktree_names()
        or workspace.worktree_path(repo, execution.id).exists()
    ):
        problems.append(f"worktree {execution.id} remains")
    if journal.lock_owner(repo, execution.improvement).get("execution") == execution.id:
        problems.append(f"lock of {execution.improvement} is still held by this execution")
    if _user_refs(repo, execution.branch) != user_refs:
        problems.append("other branches or tags changed during the rollback")
    if problems:
        raise TarsError(*(f"rollback of {execution.id} not verified: {p}" for p in problems))


def replay(repo: Repo, plan: ExecutionPlan, execution: Execution, without: set[int]) -> str | None:
    """The tree of the plan applied to its base in memory, leaving out steps `without` (and
    those not applied), each with its heal. None when a kept step no longer applies."""
    tree = plan.base.tree
    results = {s.number: s for s in execution.steps}
    for step in plan.steps:
        result = results[step.number]
        if step.number in without or result.state in ("pending", "running", "failed", "reverted"):
            continue
        if isinstance(step.action, RunAction):
            if result.commit is None:
                continue  # a command that changed nothing
            picked = cascading.pick(repo, result.commit, tree)
        else:
            picked = _apply(repo, step.action, tree)
        if picked is not None and result.heal and result.heal.commit:
            picked = cascading.pick(repo, result.heal.commit, picked)
        if picked is None:
            return None
        tree = picked
    return tree


def _apply(repo: Repo, action: actions.FileAction, tree: str) -> str | None:
    files = actions.TreeFiles(repo, tree)
    try:
        paths = actions.apply(action, files)
    except actions.ActionProblem:
        return None
    return repo.build_tree(tree, files.changes(paths))


def revert_message(execution: Execution, step: StepResult, commit: str) -> str:
    what = "the heal of step" if commit != step.commit else "step"
    return (
        f'Revert {what} {step.number} "{step.name}"\n\n'
        f"This reverts commit {commit}.\n\n"
        f"Tars-Improvement: {execution.improvement}\n"
        f"Tars-Execution: {execution.id}\n"
        f"Tars-Revert-Of: {commit}\n"
        f"Tars-Step: {step.number}\n"
    )


def rollback_steps(repo: Repo, execution_id: str, number: int, *, cascade: bool) -> Execution:
    """Revert step `number` (and with `cascade`, the steps built on it, newest first) as new
    commits on the branch, verified against a replay of the plan without them."""
    record = journal.Record.resume(repo, execution_id)
    execution = record.execution
    _refuse_unless_rollbackable(execution)
    _refuse_if_checked_out(repo, execution)
    branch_ref = f"refs/heads/{execution.branch}"
    if repo.ref(branch_ref) != execution.head_commit:
        raise TarsError(
            f"branch {execution.branch} is not at {(execution.head_commit or '')[:10]}, where "
            "this execution left it; step rollback works on tars-bot's own commits only"
        )
    with journal.lock(repo, execution.improvement, f"rollback-{execution.id}"):
        return revert_steps(repo, record, number, cascade=cascade)


def revert_steps(repo: Repo, record: journal.Record, number: int, *, cascade: bool) -> Execution:
    """The step rollback, for a caller holding the improvement's lock (also used by the
    validator's drop-step)."""
    execution = record.execution
    results = {s.number: s for s in execution.steps}
    if number not in results:
        raise TarsError(f"execution {execution.id} has no step {number} (1 to {len(results)})")
    if results[number].state != "applied":
        raise TarsError(f"step {number} is {results[number].state}: there is nothing to revert")
    steps = cascading.Steps(journal.load_plan(repo, execution.id), results)
    targets, head = cascading.choose(
        repo,
        execution,
        steps,
        number,
        revert_message,
        lambda without, tip: replay(repo, steps.plan, execution, without) == repo.tree_of(tip),
    )
    if head is None:
        raise TarsError(f"step {number} cannot be reverted cleanly; nothing was changed")
    if (others := sorted(targets - {number})) and not cascade:
        names = ", ".join(f'{n} "{results[n].name}"' for n in others)
        raise TarsError(
            f"step {number} cannot be reverted alone: later steps build on it ({names}); "
            "add --cascade to revert them too. Nothing was changed."
        )
    record.update(pending=f"revert:{head}")
    if execution.branch:
        repo.update_ref(f"refs/heads/{execution.branch}", head, execution.head_commit)
    return _finish_revert(repo, record, head)


def _finish_revert(repo: Repo, record: journal.Record, head: str) -> Execution:
    """Journal the reverts found on the branch between the recorded head and `head`: a step
    is reverted with its own commit (its heal's revert comes just before)."""
    execution = record.execution
    reverts = {}  # reverted commit -> its revert
    for commit in repo.commits_between(execution.head_commit or "", head):
        trailers = repo.trailers(commit)
        if trailers.get("Tars-Execution") == execution.id and "Tars-Revert-Of" in trailers:
            reverts[trailers["Tars-Revert-Of"]] = commit
    steps = [
        s.model_copy(update={"state": "reverted", "revert_commit": reverts[s.commit]})
        if s.commit in reverts
        else s
        for s in execution.steps
    ]
    update: dict[str, object] = {"steps": steps, "head_commit": head, "pending": None}
    newly = [s.number for s in execution.steps if s.commit in reverts and s.state != "reverted"]
    if newly and (execution.checks or execution.checks_stale):
        # the checks ran on the old tip: no check has seen this tree
        update["checks_stale"] = f"unvalidated since rollback of step {min(newly)}"
    done = execution.model_copy(update=update)
    record.save(done)
    return done


def drop_failed_step(
    space: workspace.Workspace, execution: Execution, failed: StepResult
) -> StepResult:
    """With `on_failure: drop-step`, a step committed but failing a per-step check is dropped
    as a culprit of a final check is: reverted by a commit on the branch, and the execution
    goes on. The caller journaled the failed step (and its commit) first."""
    for commit in reversed(failed.commits):  # the head: its revert always applies
        tree = space.repo.revert(commit, space.head)
        assert tree is not None
        paths = space.repo.changed_paths(space.head, tree)
        space.commit(tree, paths, revert_message(execution, failed, commit))
    reason = f"dropped: {failed.reason}"
    return failed.model_copy(
        update={"state": "reverted", "revert_commit": space.head, "reason": reason}
    )


def recover(repo: Repo) -> list[str]:
    """Finish or undo what dead processes left; remove orphan worktrees and stale locks."""
    done = [f"released stale lock {name}" for name in journal.release_stale_locks(repo)]
    # a process killed while it moved the outcome index left its lock file; with no execution
    # holding a lock, no live process is writing it (recover assumes none is starting)
    if not repo.refs(journal.LOCKS) and repo.clear_stale_ref_lock(outcomes.STATS):
        done.append("removed the stale lock of the outcome index")
    # a process killed between its journal and the index left the index behind
    done += [f"indexed execution {i}" for i in outcomes.reconcile(repo, journal.heads(repo))]
    done += [f"removed idle pooled worktree {name}" for name in workspace.clear_pool(repo)]
    running, owners = set(), set()
    unfinished = [e for e in journal.history(repo) if e.in_flight or e.pending]
    for execution in unfinished:
        since = execution.resumed_at or execution.started_at
        if journal.process_alive(execution.pid, execution.host, since):
            running.add(execution.id)
            owners.add(execution.pid or 0)
    # before their worktrees go: a step may still run where its tars-bot was killed
    ended = processes.end_leftovers(workspace.worktree_path(repo, "x").parent, owners)
    done += [f"ended leftover step process {pid}" for pid in ended]
    for execution in unfinished:
        if execution.id in running:
            continue
        try:
            done.append(_recover_execution(repo, execution))
        except TarsError as e:
            done.append(f"could not recover {execution.id}: {e}")
    ours = journal.execution_ids(repo) - running
    for name in repo.worktree_names():  # named <execution id> or <execution id>+<purpose>
        if name.split("+")[0] in ours:
            repo.remove_worktree(name, workspace.worktree_path(repo, name))
            done.append(f"removed worktree {name}")
    orphans = workspace.worktree_path(repo, "x").parent
    for directory in orphans.iterdir() if orphans.is_dir() else []:
        if directory.name.split("+")[0] not in running and not directory.name.startswith("pool-"):
            shutil.rmtree(directory, ignore_errors=True)
            done.append(f"removed orphan worktree directory {directory.name}")
    done += [f"pruned worktree record {name}" for name in repo.prune_worktrees()]
    if not running:  # nothing in use: whatever is left under the git dir is a killed one's
        done += workspace.sweep(repo)
    return done


def _recover_execution(repo: Repo, execution: Execution) -> str:
    for ref in (
        journal.EXECUTIONS + execution.id,
        journal.LOCKS + execution.improvement,
        f"refs/heads/{execution.branch}",
    ):
        repo.clear_stale_ref_lock(ref)
    pending, done = execution.pending or "", []
    if pending == "rollback":
        rollback_execution(repo, execution.id, recovering=True)
        return f"completed the rollback of {execution.id} ({execution.improvement})"
    if pending.startswith("revert:"):
        record = journal.Record.resume(repo, execution.id)
        tip = repo.ref(f"refs/heads/{execution.branch}")
        if tip is not None and tip == pending.removeprefix("revert:"):
            _finish_revert(repo, record, tip)
            done.append(f"completed the step rollback of {execution.id}")
        else:
            record.save(execution.model_copy(update={"pending": None}))
            done.append(f"abandoned the unfinished step rollback of {execution.id}")
        execution = record.execution
    if execution.in_flight and any(g.decision for g in execution.gates):
        # a resume died: the approval stands, and a new resume continues from the journal
        done.append(park_again(repo, execution))
    elif execution.in_flight:  # its process died before it finished
        reason = f"interrupted: process {execution.pid} on {execution.host} died"
        rollback_execution(repo, execution.id, recovering=True, reason=f"{reason}; rolled back")
        done.append(f"rolled back interrupted execution {execution.id} ({execution.improvement})")
    return "; ".join(done)


def park_again(repo: Repo, execution: Execution) -> str:
    """A resumed execution whose process died goes back to `parked` with its decision kept, at
    the head its journal records: a step it left half done (or committed unjournaled) runs
    again on `tars-bot resume`. Never rolled back: it was approved."""
    branch = f"refs/heads/{execution.branch}"
    tip, head = repo.ref(branch), execution.head_commit or execution.base_commit
    if tip is not None and tip != head:
        if not journal.made_by_tars(repo, tip, execution=execution.id):
            raise TarsError(f"branch {execution.branch} moved to {tip[:10]}, not tars-bot's commit")
        repo.update_ref(branch, head, tip)  # back to what the journal says
    steps = [
        s.model_copy(update={"state": "pending", "commit": None}) if s.state == "running" else s
        for s in execution.steps
    ]
    record = journal.Record.resume(repo, execution.id)
    record.save(execution.model_copy(update={"state": "parked", "steps": steps}))
    return (
        f"parked again execution {execution.id} ({execution.improvement}), whose resume died; "
        f"its approval stands: continue with `tars-bot resume --execution-id {execution.id}`"
    )
