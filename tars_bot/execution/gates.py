"""Gates: where an execution parks for a person's decision.

A gate is bound to content (the step's commit, its tree, the plan's digest): a decision is
checked against all three and journaled before anything acts on it. Nothing waits: a parked
execution has no process, and a gate older than `approval_timeout` expires when a command
looks at it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tars_bot import faults
from tars_bot.config import config_at
from tars_bot.errors import TarsError
from tars_bot.git import RefConflict, Repo
from tars_bot.models import Decision, Execution, ExecutionPlan, Gate, PlannedStep
from tars_bot.models.execution import SHA_SHOWN
from tars_bot.records import journal
from tars_bot.rollback import undo
from tars_bot.ui.wording import approve_command

NOW_ENV = "TARS_BOT_NOW"  # an ISO time that stands for now: expiry is tested without waiting
USER_ENV = "TARS_BOT_USER"  # who decides at the command line (default: the login name)
PAUSES = "refs/tars-bot/pause/"  # a pause asked for: the running process journals, not us


class AlreadyDecided(TarsError):
    """The gate (or the comment) was decided on before: acted on once."""


def now() -> datetime:
    given = os.environ.get(NOW_ENV)
    return datetime.fromisoformat(given) if given else datetime.now(UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def local_user() -> str:
    return os.environ.get(USER_ENV) or getpass.getuser()


def parks_after(step: PlannedStep, execution: Execution) -> bool:
    return not execution.dry_run and (step.gated or execution.step_by_step)


def new_gate(
    repo: Repo,
    execution: Execution,
    plan: ExecutionPlan,
    step: int,
    commit: str,
    kind: Literal["step", "pause"] = "step",
) -> Gate:
    """The gate after `step`, at `commit`: pending, or approved already by an approval given in
    advance (`approve --through N`, `--all`)."""
    config = config_at(repo, plan.base.commit)
    moment = now()
    gate = Gate(
        id=f"{kind}-{step}",
        kind=kind,
        step=step,
        commit=commit,
        tree=repo.tree_of(commit),
        plan_digest=plan.digest,
        requested_at=stamp(moment),
        expires_at=stamp(moment + timedelta(seconds=config.approval_timeout)),
        requirements=["approved", *config.approval_require],
    )
    advance = next((g.decision for g in reversed(execution.gates) if g.decision), None)
    through = execution.approved_through or 0
    if kind == "step" and advance is not None and step <= through:
        reason = f"approved in advance through step {through}"
        decision = advance.model_copy(update={"commit": commit, "reason": reason})
        gate = gate.model_copy(update={"status": "approved", "decision": decision})
    return gate


def park(record: journal.Record, gate: Gate) -> bool:
    """Journal the gate, and `parked` unless it was approved in advance. Whether it parked."""
    execution = record.execution
    parks = gate.status == "pending"
    update: dict[str, object] = {"gates": [*execution.gates, gate], "head_commit": gate.commit}
    record.save(execution.model_copy(update=update | ({"state": "parked"} if parks else {})))
    if parks:
        faults.point("after-parked")
    return parks


def diff_of(repo: Repo, execution: Execution) -> str:
    """The change of the step the execution's gate is after (its heal commit included)."""
    gate = execution.gate
    if gate is None:
        raise TarsError(f"execution {execution.id} has no gate")
    step = next((s for s in execution.steps if s.number == gate.step), None)
    parents = repo.parents(step.commit) if step is not None and step.commit else []
    return repo.diff(parents[0] if parents else gate.commit, gate.commit)


def pause_asked(repo: Repo, execution_id: str) -> bool:
    return repo.ref(PAUSES + execution_id) is not None


def clear_pause(repo: Repo, execution_id: str) -> None:
    target = repo.ref(PAUSES + execution_id)
    if target is not None:
        repo.update_ref(PAUSES + execution_id, None, target)


def ask_pause(repo: Repo, execution_id: str) -> Execution:
    """Ask the running execution to park before its next step (it reads this between steps:
    its journal is its own to write)."""
    record = journal.Record.resume(repo, execution_id)
    execution = record.execution
    if execution.state != "running":
        raise TarsError(
            f"execution {execution_id} is {execution.state}, not running: nothing to pause"
        )
    head = repo.ref(journal.EXECUTIONS + execution_id)
    assert head is not None  # just read
    repo.create_ref(PAUSES + execution_id, head)  # asked twice: asked
    return execution


def expire_if_due(repo: Repo, execution_id: str) -> Execution:
    """The execution, its pending gate expired first if `approval_timeout` has passed; then
    `on_expire` applied: the branch kept, or rolled back."""
    record = journal.Record.resume(repo, execution_id)
    execution, gate = record.execution, record.execution.gate
    if execution.state != "parked" or gate is None or gate.status != "pending":
        return execution
    if now() < datetime.fromisoformat(gate.expires_at):
        return execution
    expired = gate.model_copy(update={"status": "expired"})
    reason = f"gate {gate.id} expired at {gate.expires_at} without a decision"
    record.update(
        state="expired",
        gates=[*execution.gates[:-1], expired],
        failure_reason=reason,
        finished_at=journal.now(),
    )
    if config_at(repo, execution.base_commit).on_expire == "rollback":
        return undo.rollback_execution(repo, execution_id, recovering=True, reason=reason)
    return record.execution


def expire_due(repo: Repo) -> list[Execution]:
    """Every parked execution whose gate expired now: expired, and `on_expire` applied."""
    parked = [e for e in journal.history(repo) if e.state == "parked"]
    done = [expire_if_due(repo, e.id) for e in parked]
    return [e for e in done if e.state != "parked"]


def parked_of(repo: Repo, improvement: str) -> Execution | None:
    """The improvement's parked execution, if any (an expired gate first expires)."""
    for execution in journal.history(repo):
        if execution.improvement != improvement or execution.state != "parked":
            continue
        if (current := expire_if_due(repo, execution.id)).state == "parked":
            return current
    return None


@dataclass(frozen=True)
class Ask:
    """A decision as asked for: at the command line, or (later) by a comment."""

    verdict: Literal["approve", "reject"]
    by: str
    via: Literal["cli", "comment", "check_run_action", "environment"] = "cli"
    step: int | None = None
    sha: str | None = None
    through: int | None = None  # approve the gates up to this step in advance
    reason: str = ""
    comment_id: int | None = None
    permission: str | None = None


def decide(repo: Repo, execution_id: str, ask: Ask) -> Execution:
    """Check `ask` against the pending gate and journal the decision; nothing acts on it yet."""
    execution = expire_if_due(repo, execution_id)
    record = journal.Record.resume(repo, execution_id)
    gate = _pending_gate(execution, ask)
    _check_matches(execution, gate, ask)
    _check_content(repo, execution, gate)
    if ask.verdict == "approve" and "not_self" in gate.requirements and _self(ask, execution):
        raise TarsError(
            f"{ask.by} started execution {execution.id} and may not approve it (the gate "
            f"requires not_self): someone else must approve step {gate.step}"
        )
    decision = Decision(
        verdict=ask.verdict,
        by=ask.by,
        permission=ask.permission,
        via=ask.via,
        comment_id=ask.comment_id,
        at=journal.now(),
        commit=gate.commit,
        reason=ask.reason,
    )
    status = "approved" if ask.verdict == "approve" else "rejected"
    decided = gate.model_copy(update={"status": status, "decision": decision})
    update: dict[str, object] = {"gates": [*execution.gates[:-1], decided]}
    if ask.through is not None:
        update["approved_through"] = ask.through
    try:
        record.save(record.execution.model_copy(update=update))
    except RefConflict:
        raise AlreadyDecided(
            f"execution {execution.id}: its journal moved while deciding (another decision?); "
            f"see `tars-bot status --execution-id {execution.id}`"
        ) from None
    faults.point("after-decision")
    return record.execution


def _self(ask: Ask, execution: Execution) -> bool:
    return ask.by == execution.requested_by


def _pending_gate(execution: Execution, ask: Ask) -> Gate:
    """The gate a decision is for: the execution's pending one; else why there is none."""
    if ask.comment_id is not None:
        for seen in execution.gates:
            if seen.decision is not None and seen.decision.comment_id == ask.comment_id:
                raise AlreadyDecided(f"comment {ask.comment_id} was acted on already")
    gate = execution.gate
    if gate is not None and gate.decision is not None and execution.state == "parked":
        d = gate.decision
        verb = "approved" if d.verdict == "approve" else "rejected"
        raise AlreadyDecided(
            f"gate {gate.id} of execution {execution.id} is already {verb} by {d.by} at {d.at}; "
            f"continue it with `tars-bot resume --execution-id {execution.id}`"
        )
    if gate is not None and gate.status == "expired":
        raise TarsError(
            f"execution {execution.id}: gate {gate.id} expired at {gate.expires_at}; "
            "execute the improvement again"
        )
    if execution.state != "parked" or gate is None:
        last = next((g for g in reversed(execution.gates) if g.decision), None)
        if last is not None and last.decision is not None:
            verb = "approved" if last.decision.verdict == "approve" else "rejected"
            raise AlreadyDecided(
                f"execution {execution.id} is {execution.state}: its gate {last.id} was already "
                f"{verb} by {last.decision.by} at {last.decision.at}"
            )
        raise TarsError(f"execution {execution.id} is {execution.state}: it waits for no decision")
    return gate


def _check_matches(execution: Execution, gate: Gate, ask: Ask) -> None:
    """--step and --sha must name the pending gate: a decision is about what was shown."""
    current = (
        f"execution {execution.id} waits at gate {gate.id} (step {gate.step}, "
        f"commit {gate.commit[:SHA_SHOWN]}); to decide on it: {approve_command(execution)}"
    )
    earlier = next((g for g in execution.gates if g.step == ask.step and g.decision), None)
    if ask.step is not None and ask.step != gate.step and earlier and earlier.decision:
        verb = "approved" if earlier.decision.verdict == "approve" else "rejected"
        raise AlreadyDecided(
            f"gate {earlier.id} is already {verb} by {earlier.decision.by} at "
            f"{earlier.decision.at}; {current}"
        )
    if ask.step is not None and ask.step != gate.step:
        raise TarsError(f"--step {ask.step} is not the pending gate: {current}")
    if ask.sha is not None and not (len(ask.sha) >= 4 and gate.commit.startswith(ask.sha.lower())):
        raise TarsError(f"--sha {ask.sha} is not the commit of the pending gate: {current}")
    if ask.through is not None and ask.through < gate.step:
        raise TarsError(f"--through {ask.through} is before the pending gate: {current}")


def _check_content(repo: Repo, execution: Execution, gate: Gate) -> None:
    """The branch and the plan must be what the gate showed."""
    tip = repo.ref(f"refs/heads/{execution.branch}")
    if tip != gate.commit:
        moved = f"{gate.commit[:SHA_SHOWN]} → {tip[:SHA_SHOWN]}" if tip else "it was deleted"
        raise TarsError(
            f"the branch moved: {moved} (branch {execution.branch}); gate {gate.id} was for "
            f"{gate.commit[:SHA_SHOWN]}: nothing was decided"
        )
    plan = journal.load_plan(repo, execution.id)
    if not plan.is_sealed or plan.digest != gate.plan_digest:
        raise TarsError(
            f"the plan of execution {execution.id} changed since gate {gate.id} "
            f"({gate.plan_digest[:19]} → {plan.compute_digest()[:19]}): nothing was decided"
        )
