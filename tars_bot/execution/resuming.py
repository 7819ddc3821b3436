"""Deciding on a parked execution and continuing it: exactly once.

Order (docs/architecture.md): the decision is journaled; the resume takes the improvement's
lock, reads the journal again and journals `running` (the compare-and-swap that two racing
resumes meet at) before any worktree is taken; then the remaining steps run as in `execute`,
and may park again at the next gate.
"""

from __future__ import annotations

import os
import socket

from tars_bot import faults
from tars_bot.config import config_at
from tars_bot.errors import TarsError
from tars_bot.execution import gates, orchestrate
from tars_bot.execution.orchestrate import ExecutionResult, Progress, Silent
from tars_bot.execution.sandbox import open_sandbox
from tars_bot.git import RefConflict, Repo
from tars_bot.models import Execution
from tars_bot.records import journal
from tars_bot.rollback import undo
from tars_bot.ui.wording import approve_command


def approve(
    repo: Repo, execution_id: str, ask: gates.Ask, progress: Progress | None = None
) -> ExecutionResult:
    """Journal the approval of the pending gate, then continue the execution."""
    gates.decide(repo, execution_id, ask)
    return resume(repo, execution_id, progress)


def reject(
    repo: Repo, execution_id: str, ask: gates.Ask, progress: Progress | None = None
) -> ExecutionResult:
    """Journal the rejection, then act on it as `resume` does."""
    gates.decide(repo, execution_id, ask)
    return resume(repo, execution_id, progress)


def resume(repo: Repo, execution_id: str, progress: Progress | None = None) -> ExecutionResult:
    """Continue a parked execution whose gate is decided (or paused: resuming decides it). A
    rejected gate: `on_reject` rolls the execution back, or reverts the step and goes on."""
    execution = gates.expire_if_due(repo, execution_id)
    gate = execution.gate
    if execution.state == "parked" and gate is not None and gate.status == "pending":
        if gate.kind != "pause":
            raise TarsError(
                f"execution {execution_id} waits for approval of step {gate.step}: "
                f"`{approve_command(execution)}`"
            )
        gates.decide(repo, execution_id, gates.Ask("approve", gates.local_user()))
    if (reason := _rejected_to_roll_back(repo, execution)) is not None:
        return orchestrate.result_of(
            undo.rollback_execution(repo, execution_id, reason=reason), None
        )
    try:
        with journal.lock(repo, execution.improvement, execution_id):
            return _resume_locked(repo, execution_id, progress or Silent())
    except journal.LockHeld:
        raise TarsError(f"execution {execution_id}: already resumed (its lock is held)") from None


def _rejected_to_roll_back(repo: Repo, execution: Execution) -> str | None:
    """Why the execution is rolled back, when its gate was rejected and on_reject says so."""
    gate = execution.gate
    if execution.state != "parked" or gate is None or gate.decision is None:
        return None
    if gate.status != "rejected" or config_at(repo, execution.base_commit).on_reject != "rollback":
        return None
    said = f": {gate.decision.reason}" if gate.decision.reason else ""
    return f"gate {gate.id} rejected by {gate.decision.by}{said}"


def _resume_locked(repo: Repo, execution_id: str, progress: Progress) -> ExecutionResult:
    record = journal.Record.resume(repo, execution_id)  # read again, under the lock
    execution, gate = record.execution, record.execution.gate
    if execution.state != "parked" or gate is None:
        raise TarsError(f"execution {execution_id}: already resumed (it is {execution.state})")
    if gate.status not in ("approved", "rejected"):
        raise TarsError(f"execution {execution_id}: gate {gate.id} is {gate.status}")
    plan = journal.load_plan(repo, execution_id)
    if not plan.is_sealed or plan.digest != gate.plan_digest:
        raise TarsError(f"the plan of execution {execution_id} changed since gate {gate.id}")
    tip = repo.ref(f"refs/heads/{execution.branch}")
    if tip != execution.head_commit:
        was, now = (execution.head_commit or "")[:10], (tip or "gone")[:10]
        raise TarsError(f"the branch moved: {was} → {now} (branch {execution.branch})")
    config = config_at(repo, plan.base.commit)
    sandbox = open_sandbox(config, repo)  # fail closed
    rejected = next((s for s in execution.steps if s.number == gate.step), None)
    if gate.status == "rejected" and rejected is not None and rejected.state == "applied":
        undo.revert_steps(repo, record, gate.step, cascade=False)  # on_reject = "step"
    try:
        record.update(
            state="running", pid=os.getpid(), host=socket.gethostname(), resumed_at=journal.now()
        )
    except RefConflict:
        raise TarsError(f"execution {execution_id}: already resumed") from None
    faults.point("after-resume-start")
    with orchestrate.finished_when_raising(repo, record):
        done, _ = orchestrate.run_steps(
            repo, plan, record, progress, sandbox, fresh=False, resuming=True
        )
    return orchestrate.result_of(done, None)
