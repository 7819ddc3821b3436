"""One execution of a plan: check the plan, prepare, apply the steps, validate, finish.

Each step becomes a commit on a new branch in a worktree of its own; every result is journaled
as it comes, and an execution that does not succeed leaves no branch behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from tars_bot import faults
from tars_bot.config import Config, config_at
from tars_bot.errors import TarsError, Terminated
from tars_bot.execution import executor, gates, workspace
from tars_bot.execution.sandbox import Sandbox, SandboxInfo, open_sandbox
from tars_bot.execution.view import View
from tars_bot.git import Repo
from tars_bot.models import (
    KEPT,
    Benefit,
    BenefitResult,
    CheckResult,
    Execution,
    ExecutionPlan,
    ExecutionState,
    Limits,
    PlannedStep,
    SandboxReport,
    StepResult,
)
from tars_bot.planning import provenance, sealing
from tars_bot.records import journal, learning, outcomes
from tars_bot.rollback import cascading, landing, revert, undo
from tars_bot.ui import wording
from tars_bot.validation import final_checks, healing
from tars_bot.validation.validator import Validator


@dataclass(frozen=True)
class ExecutionResult:
    success: bool
    state: ExecutionState
    failure_reason: str | None
    execution_id: str
    branch: str | None
    steps: list[StepResult]
    checks: list[CheckResult] = field(default_factory=list)
    actual_benefits: list[BenefitResult] = field(default_factory=list)
    diff: str | None = None  # the combined change, for dry runs


class Progress(Protocol):
    """Hooks for a live display (the CLI's is `report.LiveProgress`)."""

    def step_started(self, step: PlannedStep) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def output(self, chunk: bytes) -> None: ...
    # a check (nox session) on a commit: the tip, a bisection probe (step 0: the base), or a
    # step's own checks; cached results are reported too
    def check_started(self, check: str, commit: str, step: int | None) -> None: ...
    def check_finished(self, result: CheckResult) -> None: ...


class Silent:
    """Progress that shows nothing: the library's default."""

    def step_started(self, step: PlannedStep) -> None:
        pass

    def step_finished(self, result: StepResult) -> None:
        pass

    def output(self, chunk: bytes) -> None:
        pass

    def check_started(self, check: str, commit: str, step: int | None) -> None:
        pass

    def check_finished(self, result: CheckResult) -> None:
        pass


def sandbox_view(repo: Repo, config: Config, *, check: bool) -> tuple[SandboxInfo, View | None]:
    """What a run step (or a check) would see in one of the repository's worktrees; the
    view is None where the sandbox is off."""
    sandbox = open_sandbox(config, repo)
    if sandbox.bwrap is None:
        return sandbox.info, None
    network = config.check_network if check else config.allow_network
    worktree = workspace.worktree_path(repo, "<execution>")
    memory = config.limits.memory_mb
    return sandbox.info, sandbox.explain(worktree, check=check, network=network, memory_mb=memory)


def execute(
    repo: Repo,
    plan: ExecutionPlan,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    fresh: bool = False,
    reverts: tuple[str, int | None] | None = None,
    step_by_step: bool = False,
    requested_by: str | None = None,
) -> ExecutionResult:
    """Run the plan's steps as commits on a new branch in a worktree of their own; with
    `fresh`, checks run even where a result for the tree is cached. `reverts`: the merged
    execution (and step) the plan reverts, recorded on both. A gated step (every step, with
    `step_by_step`) parks the execution once applied and checked: this returns, parked."""
    progress = progress or Silent()
    check_plan(repo, plan)
    config = config_at(repo, plan.base.commit)
    sandbox = open_sandbox(config, repo)  # fail closed
    execution_id = journal.new_execution_id()
    if not dry_run:
        refuse_if_parked(repo, plan.improvement.id or "")
    with journal.lock(repo, plan.improvement.id or "", execution_id):
        if not dry_run:
            take_over_branch(repo, plan, execution_id)
        execution = new_execution(plan, execution_id, dry_run, sandbox, config, reverts)
        requester = requested_by or gates.local_user()  # who `not_self` keeps from approving
        update = {"requested_by": requester, "step_by_step": step_by_step}
        execution = execution.model_copy(update=update)
        record = journal.Record.start(repo, execution, plan)
        with finished_when_raising(repo, record):
            execution, diff = run_steps(repo, plan, record, progress, sandbox, fresh=fresh)
    return result_of(execution, diff)


def refuse_if_parked(repo: Repo, improvement: str) -> None:
    """A parked execution holds its branch until it is decided on or expires."""
    parked = gates.parked_of(repo, improvement)
    if parked is not None:
        raise TarsError(
            f"improvement {improvement!r} has a parked execution, {parked.id}, waiting for "
            f"approval: `{wording.approve_command(parked)}`, or reject it "
            f"(`tars-bot reject --execution-id {parked.id}`)"
        )


def check_plan(repo: Repo, plan: ExecutionPlan) -> None:
    """The plan must be intact and its base where it was when planned."""
    check_integrity(repo, plan)
    commit, _ = repo.resolve(plan.base.ref)
    if commit != plan.base.commit:
        raise TarsError(
            f"plan: base {plan.base.ref} moved from {plan.base.commit[:10]} to {commit[:10]} "
            "since planning; plan again, or execute with --rebase"
        )


def check_integrity(repo: Repo, plan: ExecutionPlan) -> None:
    """The plan must be as planned: sealed with the plan key here, or (planned elsewhere)
    exactly what its improvement, committed on the default branch, plans to here."""
    if not plan.is_sealed:
        raise TarsError("plan: its digest does not match its content (edited?); plan again")
    if sealing.sealed_here(plan):
        return
    if problem := provenance.difference_from_here(repo, plan, revert.default_tip(repo)):
        raise TarsError(
            f"plan: not sealed with the plan key here, and {problem}; edited? "
            f"plan again here (plans made elsewhere: the same {sealing.KEY_ENV} on both)"
        )


def take_over_branch(repo: Repo, plan: ExecutionPlan, execution_id: str) -> None:
    """The branch must be free, or hold a previous succeeded execution of this improvement,
    which the new one supersedes (its commits stay in its journal). An unvalidated one
    waits for the user's decision."""
    tip = repo.ref(f"refs/heads/{plan.branch}")
    if tip is None:
        return
    if undo.supersede(repo, plan.branch, execution_id) is None:
        executions = landing.history(repo, revert.default_tip(repo))
        held = [e for e in executions if e.head_commit == tip and e.state == "unvalidated"]
        if held:
            raise TarsError(
                f"branch {plan.branch} holds execution {held[0].id}, which could not be "
                f"validated; check it again (tars-bot validate --execution-id {held[0].id}) "
                f"or roll it back (tars-bot rollback --execution-id {held[0].id}) first"
            )
        raise TarsError(
            f"branch {plan.branch} already exists and is not the result of a finished "
            f"tars-bot execution; move or delete it (git branch -D {plan.branch}) first"
        )


def new_execution(
    plan: ExecutionPlan,
    execution_id: str,
    dry_run: bool,
    sandbox: Sandbox,
    config: Config,
    reverts: tuple[str, int | None] | None = None,
) -> Execution:
    """The execution's first record: running, its steps to come."""
    info = sandbox.info
    execution = Execution(
        sandbox=SandboxReport(
            mechanism=info.mechanism,
            sandboxed=info.sandboxed,
            network="allowed" if config.allow_network else "isolated",
            memory=info.memory,
        ),
        id=execution_id,
        improvement=plan.improvement.id or "",
        state="running",
        dry_run=dry_run,
        branch=None if dry_run else plan.branch,
        base_commit=plan.base.commit,
        started_at=journal.now(),
        steps=[StepResult(number=s.number, name=s.name) for s in plan.steps],
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    if reverts is not None:
        reverted, step = reverts
        execution = execution.model_copy(update={"reverts": reverted, "step_reverted": step})
    return execution


@contextlib.contextmanager
def finished_when_raising(repo: Repo, record: journal.Record) -> Iterator[None]:
    """An exception (Ctrl-C, a termination, a bug) ends the execution, and goes on."""
    try:
        yield
    except BaseException as e:
        stopped = isinstance(e, KeyboardInterrupt | Terminated)
        state = "interrupted" if stopped else "failed"
        finish(repo, record, state, f"{type(e).__name__}: {e}".rstrip(": "))
        raise


def run_steps(
    repo: Repo,
    plan: ExecutionPlan,
    record: journal.Record,
    progress: Progress,
    sandbox: Sandbox,
    *,
    fresh: bool,
    resuming: bool = False,
) -> tuple[Execution, str | None]:
    """Steps (those still pending), then final checks and benefits; every result journaled as
    it comes. The execution finished (or parked), and the combined change of a dry run.
    `resuming`: the branch exists at the journaled head, where a gate left it."""
    execution = record.execution
    config = config_at(repo, plan.base.commit)
    limits = config.limits_for(plan.improvement)
    head = (execution.head_commit or plan.base.commit) if resuming else plan.base.commit
    with workspace.Workspace(
        repo, execution.id, head, execution.branch, config.worktree_pool, existing=resuming
    ) as space:
        probes = final_checks.ProbeLog(record, progress)
        validator = _validator(repo, config, limits, space, plan, probes, fresh=fresh)
        with contextlib.closing(validator):
            ctx = executor.StepContext(
                plan=with_early_checks(repo, plan, config),
                execution_id=execution.id,
                config=config,
                validator=validator,
                sandbox=sandbox,
                on_output=progress.output,
            )
            failure = apply_steps(ctx, space, record, progress)
            if record.execution.state == "parked":
                return record.execution, None  # no process waits: the worktree goes, then the lock
            if failure is None:
                outcome = validate(ctx, plan, record, space, probes, limits)
            else:
                outcome = final_checks.Failure(failure)
        diff = repo.diff(plan.base.commit, space.head) if execution.dry_run else None
    outcome = outcome or all_dropped(record.execution)
    if outcome is None:
        return finish(repo, record, "succeeded", None), diff
    return finish(repo, record, outcome.state, outcome.reason), diff


def all_dropped(execution: Execution) -> final_checks.Failure | None:
    """Nothing is left when drop-step dropped every step that changed something: the
    execution is rolled back as a whole, as a step rollback of every step does."""
    if any(s.state == "applied" for s in execution.steps):
        return None
    dropped = [str(s.number) for s in execution.steps if s.state == "reverted"]
    if not dropped:
        return None
    return final_checks.Failure(f"every step was dropped ({', '.join(dropped)})")


def _validator(
    repo: Repo,
    config: Config,
    limits: Limits,
    space: workspace.Workspace,
    plan: ExecutionPlan,
    probes: final_checks.ProbeLog,
    *,
    fresh: bool,
) -> Validator:
    return Validator(
        repo,
        config,
        limits,
        space.checkout,
        plan.base.commit,
        on_output=probes.output,
        on_check_started=probes.started,
        on_check_finished=probes.finished,
        fresh=fresh,
    )


def with_early_checks(repo: Repo, plan: ExecutionPlan, config: Config) -> ExecutionPlan:
    """The plan as its steps run: those at least `early_checks_above` likely to break a
    check also run the final checks right away. The journal keeps the plan as sealed."""
    threshold = config.early_checks_above
    risks = risks_of(repo, plan) if threshold is not None and plan.validation.final else None
    if not risks:
        return plan
    risky = {r.step for r in risks if r.probability >= (threshold or 0)}
    steps = [
        s.model_copy(update={"checks": list(dict.fromkeys([*s.checks, *plan.validation.final]))})
        if s.number in risky
        else s
        for s in plan.steps
    ]
    return plan.model_copy(update={"steps": steps})


def risks_of(repo: Repo, plan: ExecutionPlan) -> list[learning.Risk] | None:
    """Each planned step's chance of breaking a check, from the outcome index."""
    return learning.risks(plan, outcomes.totals(repo))


def apply_steps(
    ctx: executor.StepContext,
    space: workspace.Workspace,
    record: journal.Record,
    progress: Progress,
) -> str | None:
    """Apply the steps still pending, in order; the reason the first failing one failed, or
    None. A gated step (or a pause asked for) parks the execution after it: it is `parked`."""
    declared = cascading.Steps(ctx.plan, {})
    done = {s.number: s for s in record.execution.steps if s.state != "pending"}
    dropped = {n for n, s in done.items() if s.state == "reverted" or _skipped_for_dropped(s)}
    resumed = bool(done)
    for step in ctx.plan.steps:
        if step.number in done:
            continue  # applied before the gate the execution resumes from
        progress.step_started(step)
        if needs := sorted(declared.declared(step.number) & dropped):
            # it says it builds on a dropped step: not applied without it
            reason = f"depends on dropped step {needs[0]}"
            result = StepResult(number=step.number, name=step.name, state="skipped", reason=reason)
            save_step(record, result, space.head)
            progress.step_finished(result)
            dropped.add(step.number)
            continue
        running = StepResult(number=step.number, name=step.name, state="running")
        record.save(with_step(record.execution, running))  # the intent, before any change
        result, log = executor.apply_step(ctx, space, step)
        if resumed:
            faults.point("after-resumed-step-commit")
            resumed = False
        if healing.wanted(ctx, space, result):
            result, heal_log = healing.heal(
                ctx, space, step, result, lambda intent: save_step(record, intent, space.head)
            )
            log += heal_log
        save_step(record, result, space.head, log)
        if droppable(ctx, result):
            result = undo.drop_failed_step(space, record.execution, result)
            save_step(record, result, space.head)
            dropped.add(step.number)
        progress.step_finished(result)
        if result.state == "failed":
            return f'step {step.number} "{step.name}": {result.reason}'
        if park_after(space, record, step):
            return None
    return None


def _skipped_for_dropped(step: StepResult) -> bool:
    return step.state == "skipped" and (step.reason or "").startswith("depends on dropped")


def park_after(space: workspace.Workspace, record: journal.Record, step: PlannedStep) -> bool:
    """Park after `step` when it is gated (unless approved in advance) or a pause was asked
    for: the gate and `parked` journaled first, then the pause request cleared."""
    repo, execution = space.repo, record.execution
    gated = gates.parks_after(step, execution)
    paused = not execution.dry_run and gates.pause_asked(repo, execution.id)
    if not (gated or paused):
        return False
    sealed = journal.load_plan(repo, execution.id)
    parked = False
    if gated:
        gate = gates.new_gate(repo, record.execution, sealed, step.number, space.head)
        parked = gates.park(record, gate)
    if paused and not parked:
        gate = gates.new_gate(repo, record.execution, sealed, step.number, space.head, "pause")
        parked = gates.park(record, gate)
    if paused:
        gates.clear_pause(repo, execution.id)
    return parked


def droppable(ctx: executor.StepContext, result: StepResult) -> bool:
    """A step committed but failing a per-step check is dropped, not the execution, when the
    improvement says drop-step: as a step breaking a final check is."""
    checked = any(c.fails for c in result.checks)
    drop = ctx.plan.improvement.on_failure == "drop-step"
    return drop and result.state == "failed" and checked and bool(result.commits)


def validate(
    ctx: executor.StepContext,
    plan: ExecutionPlan,
    record: journal.Record,
    space: workspace.Workspace,
    probes: final_checks.ProbeLog,
    limits: Limits,
) -> final_checks.Failure | None:
    """The final checks, then the benefits, of the plan as sealed (when it has any); why the
    execution does not succeed, or None."""
    if not needs_validation(plan):
        return None
    record.update(state="validating")
    outcome = final_checks.validate(ctx.validator, plan, record, space, probes)
    if outcome is not None:
        return outcome
    results, failure = final_checks.measure_benefits(plan, space, ctx.config, limits)
    record.update(benefits=results)
    return None if failure is None else final_checks.Failure(failure)


def finish(repo: Repo, record: journal.Record, state: str, reason: str | None) -> Execution:
    """Record the end of the execution; one not kept leaves no branch."""
    execution = record.execution
    if state not in KEPT and execution.branch:
        undo.delete_branch(repo, execution)
    done = record.update(state=state, failure_reason=reason, finished_at=journal.now())
    gates.clear_pause(repo, execution.id)  # asked for after its last step: nothing to park before
    return done


def needs_validation(plan: ExecutionPlan) -> bool:
    measured = any(isinstance(b, Benefit) for b in plan.improvement.expected_benefits)
    return bool(plan.validation.final or plan.validation.api or measured)


def save_step(record: journal.Record, result: StepResult, head: str, log: bytes = b"") -> None:
    execution = with_step(record.execution, result).model_copy(update={"head_commit": head})
    record.save(execution, {f"logs/step-{result.number}.log": log} if log else None)


def with_step(execution: Execution, result: StepResult) -> Execution:
    steps = [result if s.number == result.number else s for s in execution.steps]
    return execution.model_copy(update={"steps": steps})


def result_of(execution: Execution, diff: str | None) -> ExecutionResult:
    return ExecutionResult(
        success=execution.state == "succeeded",
        state=execution.state,
        failure_reason=execution.failure_reason,
        execution_id=execution.id,
        branch=execution.branch if execution.kept else None,
        steps=execution.steps,
        checks=execution.checks,
        actual_benefits=execution.benefits,
        diff=diff,
    )
