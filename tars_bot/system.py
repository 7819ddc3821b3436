"""ExecutionSystem: the library API that the CLI and the GitHub integration call."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tars_bot.config import Config, parse_config
from tars_bot.errors import TarsError, Terminated
from tars_bot.execution import executor, handoff, workspace
from tars_bot.execution.sandbox import Sandbox, SandboxInfo, open_sandbox
from tars_bot.execution.view import View
from tars_bot.git import Repo
from tars_bot.models import (
    AFTER_MERGE,
    Benefit,
    BenefitResult,
    CheckResult,
    Execution,
    ExecutionPlan,
    ExecutionState,
    Improvement,
    PlannedStep,
    SandboxReport,
    StepResult,
    Suspicion,
)
from tars_bot.paths import Scope
from tars_bot.planning import loader, planner
from tars_bot.records import journal, learning, outcomes
from tars_bot.rollback import landing, revert, undo
from tars_bot.validation import final_checks, healing
from tars_bot.validation.validator import Validator

KEPT = ("succeeded", "unvalidated")  # an unvalidated result is kept for the user to decide


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


class ExecutionSystem:
    """tars-bot on one repository."""

    def __init__(self, repo_path: Path | str = ".") -> None:
        self.repo = Repo(repo_path)

    def config(self, ref: str = "HEAD") -> Config:
        _, tree = self.repo.resolve(ref)
        return parse_config(self.repo.read(tree, "pyproject.toml"), f"pyproject.toml at {ref}")

    def sandbox(self, ref: str = "HEAD") -> SandboxInfo:
        """How processes an improvement controls would be isolated; raises where the
        configuration requires a sandbox that cannot be set up here."""
        config = self.config(ref)
        return open_sandbox(config, self.repo).info

    def sandbox_view(self, *, check: bool, ref: str = "HEAD") -> tuple[SandboxInfo, View | None]:
        """What a run step (or a check) would see in one of this repository's worktrees; the
        view is None where the sandbox is off."""
        config = self.config(ref)
        sandbox = open_sandbox(config, self.repo)
        if sandbox.bwrap is None:
            return sandbox.info, None
        network = config.check_network if check else config.allow_network
        worktree = workspace.worktree_path(self.repo, "<execution>")
        memory = config.limits.memory_mb
        return sandbox.info, sandbox.explain(
            worktree, check=check, network=network, memory_mb=memory
        )

    def improvement_file(self, improvement_id: str, ref: str = "HEAD") -> Path:
        """The improvement file for `improvement_id` in the working tree's improvements dir."""
        return loader.find_improvement_file(
            self.repo.workdir / self.config(ref).improvements_dir, improvement_id
        )

    def load_improvement(self, path: Path) -> Improvement:
        return loader.load_improvement(path, display=self.display_path(path))

    def plan(
        self, improvement: Improvement, *, base: str = "HEAD", source: str | None = None
    ) -> ExecutionPlan:
        return planner.plan(self.repo, improvement, base_ref=base, source=source)

    def rebase(self, plan: ExecutionPlan) -> ExecutionPlan:
        """The plan's improvement planned again on where its base ref is now."""
        self._check_integrity(plan)
        return self.plan(plan.improvement, base=plan.base.ref)

    def execute(
        self,
        plan: ExecutionPlan,
        dry_run: bool = False,
        progress: Progress | None = None,
        fresh: bool = False,
        *,
        reverts: tuple[str, int | None] | None = None,
    ) -> ExecutionResult:
        """Run the plan's steps as commits on a new branch in a worktree of their own; with
        `fresh`, checks run even where a result for the tree is cached. `reverts`: the merged
        execution (and step) the plan reverts, recorded on both."""
        progress = progress or Silent()
        self._check_plan(plan)
        config = self.config(plan.base.commit)
        sandbox = open_sandbox(config, self.repo)  # fail closed
        execution_id = journal.new_execution_id()
        improvement_id = plan.improvement.id or ""
        with journal.lock(self.repo, improvement_id, execution_id):
            if not dry_run:
                self._take_over_branch(plan, execution_id)
            execution = self._new_execution(plan, execution_id, dry_run, sandbox, config)
            if reverts is not None:
                reverted, step = reverts
                execution = execution.model_copy(
                    update={"reverts": reverted, "step_reverted": step}
                )
            record = journal.Record.start(self.repo, execution, plan)
            try:
                execution, diff = self._run_steps(
                    plan, record, dry_run, progress, sandbox, fresh=fresh
                )
            except BaseException as e:
                stopped = isinstance(e, KeyboardInterrupt | Terminated)
                state = "interrupted" if stopped else "failed"
                self._finish(record, state, f"{type(e).__name__}: {e}".rstrip(": "))
                raise
        return ExecutionResult(
            success=execution.state == "succeeded",
            state=execution.state,
            failure_reason=execution.failure_reason,
            execution_id=execution.id,
            branch=execution.branch if execution.state in KEPT else None,
            steps=execution.steps,
            checks=execution.checks,
            actual_benefits=execution.benefits,
            diff=diff,
        )

    def rollback(
        self,
        execution_id: str,
        step: int | None = None,
        cascade: bool = False,
        token: str | None = None,
    ) -> Execution:
        """Undo a whole execution, or one step (and, with cascade, the steps built on it).
        When the branch was pushed, the remote follows: its branch deleted, or updated."""
        before = journal.load(self.repo, execution_id)
        lived = self._lived(before, self._tip(None))
        if lived.state in AFTER_MERGE:
            raise TarsError(
                f"execution {execution_id} is {lived.state}: its change is on the default branch, "
                "so its rollback is a revert on a branch of its own (`tars-bot rollback` makes it)"
            )
        if step is None:
            execution = undo.rollback_execution(self.repo, execution_id)
        else:
            execution = undo.rollback_steps(self.repo, execution_id, step, cascade=cascade)
        if execution.pushed_to and execution.branch:
            self._update_remote(execution, before.head_commit, token)
        return execution

    def _update_remote(self, execution: Execution, old_tip: str | None, token: str | None) -> None:
        remote, branch_ref = execution.pushed_to or "origin", f"refs/heads/{execution.branch}"
        theirs = self.repo.remote_refs(remote, token).get(branch_ref)
        specs = _journal_specs(execution.id)
        if theirs is not None and (theirs == old_tip or self._ours(theirs, execution)):
            deleted = execution.state == "rolled_back"
            specs.append(f":{branch_ref}" if deleted else f"+{branch_ref}:{branch_ref}")
        self.repo.push(remote, specs, token)

    def push(
        self, execution_id: str, remote: str = "origin", token: str | None = None
    ) -> Execution:
        """Push the branch and the journal. A remote branch holding commits tars-bot did not
        make is never overwritten."""
        record = journal.Record.resume(self.repo, execution_id)
        execution = record.execution
        if execution.state != "succeeded" or not execution.branch or not execution.head_commit:
            raise TarsError(f"execution {execution_id} is {execution.state}: nothing to push")
        branch_ref = f"refs/heads/{execution.branch}"
        theirs = self.repo.remote_refs(remote, token).get(branch_ref)
        if theirs not in (None, execution.head_commit) and not self._ours(theirs, execution):
            raise TarsError(
                f"{remote} has {execution.branch} at {theirs[:10]}, with commits tars-bot did not "
                "make; not overwriting it. Move that branch or merge it first."
            )
        record.save(execution.model_copy(update={"pushed_to": remote}))  # before: recorded intent
        specs = [f"+{branch_ref}:{branch_ref}", *_journal_specs(execution_id)]
        self.repo.push(remote, specs, token)
        return record.execution

    def record_pull_request(
        self, execution_id: str, url: str, remote: str = "origin", token: str | None = None
    ) -> None:
        record = journal.Record.resume(self.repo, execution_id)
        record.save(record.execution.model_copy(update={"pull_request": url}))
        self.repo.push(remote, _journal_specs(execution_id), token)

    def hand_off(self, execution_id: str, path: Path) -> None:
        """Write the execution's branch and journal as a git bundle, for a job that may push."""
        handoff.write_bundle(self.repo, journal.load(self.repo, execution_id), path)

    def receive(self, path: Path, improvement: Improvement, trusted: str = "HEAD") -> Execution:
        """Take a bundle from a job without write access: checked against the plan of
        `improvement` computed here, on a base that is `trusted` or behind it, before its branch
        and journal get their names. Raises handoff.HandoffRefused naming what is wrong."""
        tip, _ = self.repo.resolve(trusted)

        def plan_at(base: str) -> tuple[ExecutionPlan, Scope]:
            return self.plan(improvement, base=base), Scope(self.config(base).protected)

        received = handoff.receive_bundle(self.repo, path, tip, plan_at).execution
        head = self.repo.ref(journal.EXECUTIONS + received.id)
        outcomes.reconcile(self.repo, {received.id: head} if head else {})
        return received

    def fetch_journal(self, remote: str = "origin", token: str | None = None) -> None:
        """Bring the executions recorded elsewhere (e.g. by CI) into this repository."""
        spec = f"+{journal.EXECUTIONS}*:{journal.EXECUTIONS}*"
        self.repo.fetch(remote, [spec], token)
        outcomes.reconcile(self.repo, journal.heads(self.repo))  # the index follows

    def plan_of(self, execution_id: str) -> ExecutionPlan:
        return journal.load_plan(self.repo, execution_id)

    def _ours(self, commit: str, execution: Execution) -> bool:
        made_by = self.repo.trailers(commit) if self.repo.has_object(commit) else {}
        return made_by.get("Tars-Improvement") == execution.improvement

    def recover(self) -> list[str]:
        """Finish or undo what killed processes left behind; returns what was done."""
        return undo.recover(self.repo)

    def validate(
        self, execution_id: str, checks: list[str] | None = None, fresh: bool = False
    ) -> list[CheckResult]:
        """Run checks (default: the plan's final ones) on the execution's result again; results
        already known for that tree come from the cache."""
        record = journal.Record.resume(self.repo, execution_id)
        execution = record.execution
        if execution.state in ("running", "validating") or execution.head_commit is None:
            raise TarsError(f"execution {execution_id} has no finished result to validate")
        plan = journal.load_plan(self.repo, execution_id)
        checks = checks or plan.validation.final
        if not checks:
            raise TarsError("nothing to validate: the plan has no final checks; name --sessions")
        config = self.config(plan.base.commit)
        name = f"{execution_id}+validate"
        space = workspace.Workspace(
            self.repo, name, execution.head_commit, None, config.worktree_pool
        )
        with space:
            validator = Validator(
                self.repo, config, config.limits, space.checkout, plan.base.commit, fresh=fresh
            )
            with contextlib.closing(validator):
                results = validator.run(execution.head_commit, checks)
        record.save(execution.model_copy(update={"checks": results}))
        return results

    def status(self, execution_id: str, onto: str | None = None) -> Execution:
        """The execution as journaled, its state carried on past `succeeded` (merged, reverted)
        by what the default branch (`onto`, or found) holds now."""
        return self._lived(journal.load(self.repo, execution_id), self._tip(onto))

    def stats(self, rebuild: bool = False) -> dict:
        """What the outcome index says of all executions (learning.summary); `rebuild` makes the
        index again from the journals first. Merges the default branch shows are journaled
        first, so that they count as merged."""
        if rebuild or self.repo.ref(outcomes.STATS) is None:
            outcomes.rebuild(self.repo, journal.heads(self.repo))
        self.record_merges()
        return learning.summary(outcomes.totals(self.repo))

    def record_merges(self) -> list[str]:
        """Journal as merged the succeeded executions whose change the default branch holds;
        their ids."""
        tip = self._tip(None)
        if tip is None:
            return []
        merged = []
        for execution in journal.history(self.repo):
            found = (
                landing.find(self.repo, execution, tip) if execution.state == "succeeded" else None
            )
            if found is not None:
                record = journal.Record.resume(self.repo, execution.id)
                record.save(
                    record.execution.model_copy(update={"state": "merged", "landed": found})
                )
                merged.append(execution.id)
        return merged

    def risks(self, plan: ExecutionPlan) -> list[learning.Risk] | None:
        """Each planned step's chance of breaking a check, from the outcome index."""
        return learning.risks(plan, outcomes.totals(self.repo))

    def history(self, limit: int | None = None, onto: str | None = None) -> list[Execution]:
        tip = self._tip(onto)
        return [self._lived(e, tip) for e in journal.history(self.repo, limit)]

    def revert(
        self,
        execution_id: str,
        step: int | None = None,
        onto: str | None = None,
        progress: Progress | None = None,
        remote: str | None = None,
        token: str | None = None,
    ) -> ExecutionResult:
        """Undo a merged execution (or one step of it) on a new branch from the default branch:
        planned, executed and checked as any improvement is; never on the default branch. The
        original's journal, which names its revert, is pushed to `remote` when given."""
        plan = self.revert_plan(execution_id, step, onto)
        result = self.execute(plan, progress=progress, reverts=(execution_id, step))
        if result.success and step is None:
            self.mark_reverted(execution_id, result.execution_id, remote, token)
        return result

    def revert_plan(
        self, execution_id: str, step: int | None = None, onto: str | None = None
    ) -> ExecutionPlan:
        """The plan of the revert of a merged execution (or of its step), on the default
        branch as it is now: the same wherever the same history is."""
        ref = revert.default_branch(self.repo, onto)
        tip, _ = self.repo.resolve(ref)
        execution = self._lived(journal.load(self.repo, execution_id), tip)
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
        plan = journal.load_plan(self.repo, execution_id)
        improvement = revert.improvement(self.repo, execution, plan, execution.landed, tip, step)
        return self.plan(improvement, base=ref, source=f"revert of {execution_id}")

    def mark_reverted(
        self,
        execution_id: str,
        revert_id: str,
        remote: str | None = None,
        token: str | None = None,
    ) -> None:
        """Record on a merged execution the execution that reverts it (pushed to `remote`)."""
        record = journal.Record.resume(self.repo, execution_id)
        lived = self._lived(record.execution, self._tip(None))
        update = {"landed": lived.landed, "reverted_by": revert_id}
        record.save(record.execution.model_copy(update=update))
        if remote is not None:
            self.repo.push(remote, _journal_specs(execution_id), token)

    def record_landing(
        self,
        execution_id: str,
        merge_commit: str | None,
        closed: bool,
        remote: str | None = None,
        token: str | None = None,
    ) -> Execution:
        """What GitHub says became of the execution's pull request: merged as `merge_commit`,
        or closed unmerged; the journal is pushed to `remote` when given."""
        record = journal.Record.resume(self.repo, execution_id)
        execution = record.execution
        if execution.state != "succeeded" or execution.landed is not None:
            return execution
        if merge_commit is not None:
            found = landing.find(self.repo, execution, merge_commit) or landing.from_merge_commit(
                self.repo, execution, merge_commit
            )
            if found is None:
                return execution
            record.save(execution.model_copy(update={"state": "merged", "landed": found}))
        elif closed:
            record.save(execution.model_copy(update={"state": "closed"}))
        else:
            return execution
        if remote is not None:
            self.repo.push(remote, _journal_specs(execution_id), token)
        return record.execution

    def landed_at(self, commit: str, onto: str | None = None) -> Execution | None:
        """The merged execution whose change landed as `commit` on the default branch. Only
        the executions the commit points at are looked into: named in its message (rebased or
        squashed), its own head (a fast-forward), merged by it, or recorded as landed there."""
        tip = self._tip(onto)
        if tip is None or not self.repo.has_object(commit):
            return None
        merged = self.repo.parents(commit)[1:]
        named = self.repo.message(commit)
        for execution in journal.history(self.repo):
            head = execution.head_commit
            candidate = (
                (execution.landed is not None and execution.landed.commit == commit)
                or f"Tars-Execution: {execution.id}" in named
                or head == commit
                or (head is not None and any(self.repo.is_ancestor(head, p) for p in merged))
            )
            lived = self._lived(execution, tip) if candidate else None
            if lived is not None and lived.landed is not None and lived.landed.commit == commit:
                return lived
        return None

    def note_suspicion(
        self,
        execution_id: str,
        suspicion: Suspicion | None,
        remote: str | None = "origin",
        token: str | None = None,
    ) -> Execution:
        """Record (or clear) what a watched CI run says of a merged execution, with its
        landing, and push the journal to `remote` (None: keep it here)."""
        record = journal.Record.resume(self.repo, execution_id)
        lived = self._lived(record.execution, self._tip(None))
        update = {"suspected": suspicion, "landed": lived.landed}
        record.save(record.execution.model_copy(update=update))
        if remote is not None:
            self.repo.push(remote, _journal_specs(execution_id), token)
        return record.execution

    def _tip(self, onto: str | None) -> str | None:
        try:
            return self.repo.resolve(revert.default_branch(self.repo, onto))[0]
        except TarsError:
            if onto:
                raise
            return None  # no default branch to compare with: the journaled state stands

    def _lived(self, execution: Execution, tip: str | None) -> Execution:
        """`execution` with the state it has after its pull request."""
        if execution.state == "succeeded" and tip is not None:
            found = landing.find(self.repo, execution, tip)
            if found is not None:
                execution = execution.model_copy(update={"state": "merged", "landed": found})
        if execution.state == "merged" and execution.reverted_by:
            by = journal.load(self.repo, execution.reverted_by)
            if by.state in ("succeeded", "unvalidated", "merged"):
                execution = execution.model_copy(update={"state": "reverted"})
        return execution

    def step_log(self, execution_id: str, number: int) -> bytes | None:
        return journal.read_log(self.repo, execution_id, f"step-{number}.log")

    def display_path(self, path: Path) -> str:
        """`path` relative to the repository root when it lies inside, for messages."""
        try:
            return str(path.resolve().relative_to(self.repo.workdir.resolve()))
        except ValueError:
            return str(path)

    def _check_plan(self, plan: ExecutionPlan) -> None:
        self._check_integrity(plan)
        commit, _ = self.repo.resolve(plan.base.ref)
        if commit != plan.base.commit:
            raise TarsError(
                f"plan: base {plan.base.ref} moved from {plan.base.commit[:10]} to {commit[:10]} "
                "since planning; plan again, or execute with --rebase"
            )

    def _check_integrity(self, plan: ExecutionPlan) -> None:
        """The plan must be as planned: sealed with the plan key here, or (planned elsewhere)
        exactly what its improvement, committed on the default branch, plans to here."""
        if not plan.is_sealed:
            raise TarsError("plan: its digest does not match its content (edited?); plan again")
        if planner.sealed_here(plan):
            return
        if problem := planner.difference_from_here(self.repo, plan, self._tip(None)):
            raise TarsError(
                f"plan: not sealed with the plan key here, and {problem}; edited? "
                f"plan again here (plans made elsewhere: the same {planner.KEY_ENV} on both)"
            )

    def _take_over_branch(self, plan: ExecutionPlan, execution_id: str) -> None:
        """The branch must be free, or hold a previous succeeded execution of this improvement,
        which the new one supersedes (its commits stay in its journal). An unvalidated one
        waits for the user's decision."""
        tip = self.repo.ref(f"refs/heads/{plan.branch}")
        if tip is None:
            return
        if undo.supersede(self.repo, plan.branch, execution_id) is None:
            held = [e for e in self.history() if e.head_commit == tip and e.state == "unvalidated"]
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

    def _new_execution(
        self,
        plan: ExecutionPlan,
        execution_id: str,
        dry_run: bool,
        sandbox: Sandbox,
        config: Config,
    ) -> Execution:
        info = sandbox.info
        return Execution(
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

    def _run_steps(
        self,
        plan: ExecutionPlan,
        record: journal.Record,
        dry_run: bool,
        progress: Progress,
        sandbox: Sandbox,
        *,
        fresh: bool,
    ) -> tuple[Execution, str | None]:
        """Steps, then final checks and benefits; every result journaled as it comes."""
        execution = record.execution
        config = self.config(plan.base.commit)
        limits = config.limits_for(plan.improvement)
        branch = None if dry_run else plan.branch
        with workspace.Workspace(
            self.repo, execution.id, plan.base.commit, branch, config.worktree_pool
        ) as space:
            probes = final_checks.ProbeLog(record, progress)
            validator = Validator(
                self.repo,
                config,
                limits,
                space.checkout,
                plan.base.commit,
                on_output=probes.output,
                on_check_started=probes.started,
                on_check_finished=probes.finished,
                fresh=fresh,
            )
            with contextlib.closing(validator):
                ctx = executor.StepContext(
                    plan=self._with_early_checks(plan, config),
                    execution_id=execution.id,
                    config=config,
                    validator=validator,
                    sandbox=sandbox,
                    on_output=progress.output,
                )
                failure = self._apply_steps(ctx, space, record, progress)
                outcome = None if failure is None else final_checks.Failure(failure)
                if outcome is None and _needs_validation(plan):
                    record.save(record.execution.model_copy(update={"state": "validating"}))
                    outcome = final_checks.validate(validator, plan, record, space, probes)
                    if outcome is None:
                        results, failure = final_checks.measure_benefits(
                            plan, space, config, limits
                        )
                        record.save(record.execution.model_copy(update={"benefits": results}))
                        outcome = None if failure is None else final_checks.Failure(failure)
            diff = self.repo.diff(plan.base.commit, space.head) if dry_run else None
        if outcome is None:
            return self._finish(record, "succeeded", None), diff
        return self._finish(record, outcome.state, outcome.reason), diff

    def _with_early_checks(self, plan: ExecutionPlan, config: Config) -> ExecutionPlan:
        """The plan as its steps run: those at least `early_checks_above` likely to break a
        check also run the final checks right away. The journal keeps the plan as sealed."""
        threshold = config.early_checks_above
        risks = self.risks(plan) if threshold is not None and plan.validation.final else None
        if not risks:
            return plan
        risky = {r.step for r in risks if r.probability >= (threshold or 0)}
        steps = [
            s.model_copy(
                update={"checks": list(dict.fromkeys([*s.checks, *plan.validation.final]))}
            )
            if s.number in risky
            else s
            for s in plan.steps
        ]
        return plan.model_copy(update={"steps": steps})

    def _apply_steps(
        self,
        ctx: executor.StepContext,
        space: workspace.Workspace,
        record: journal.Record,
        progress: Progress,
    ) -> str | None:
        """Apply the steps in order; the reason the first failing one failed, or None."""
        for step in ctx.plan.steps:
            progress.step_started(step)
            running = StepResult(number=step.number, name=step.name, state="running")
            record.save(_with_step(record.execution, running))  # the intent, before any change
            result, log = executor.apply_step(ctx, space, step)
            if healing.wanted(ctx, space, result):
                result, heal_log = healing.heal(
                    ctx, space, step, result, lambda intent: _save_step(record, intent, space.head)
                )
                log += heal_log
            _save_step(record, result, space.head, log)
            progress.step_finished(result)
            if result.state == "failed":
                return f'step {step.number} "{step.name}": {result.reason}'
        return None

    def _finish(self, record: journal.Record, state: str, reason: str | None) -> Execution:
        execution = record.execution
        if state not in KEPT and execution.branch:
            undo.delete_branch(self.repo, execution)
        finished = execution.model_copy(
            update={"state": state, "failure_reason": reason, "finished_at": journal.now()}
        )
        record.save(finished)
        return finished


def _journal_specs(execution_id: str) -> list[str]:
    """The refspecs that push an execution's journal, and the outcome index with it (forced:
    whoever fetches it brings it up to date with the journals they fetch)."""
    ref = journal.EXECUTIONS + execution_id
    return [f"+{ref}:{ref}", f"+{outcomes.STATS}:{outcomes.STATS}"]


def _needs_validation(plan: ExecutionPlan) -> bool:
    measured = any(isinstance(b, Benefit) for b in plan.improvement.expected_benefits)
    return bool(plan.validation.final or plan.validation.api or measured)


def _save_step(record: journal.Record, result: StepResult, head: str, log: bytes = b"") -> None:
    execution = _with_step(record.execution, result).model_copy(update={"head_commit": head})
    record.save(execution, {f"logs/step-{result.number}.log": log} if log else None)


def _with_step(execution: Execution, result: StepResult) -> Execution:
    steps = [result if s.number == result.number else s for s in execution.steps]
    return execution.model_copy(update={"steps": steps})
