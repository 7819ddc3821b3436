"""Applying one planned step in a worktree: action, monitoring, commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tars_bot.config import Config
from tars_bot.execution import workspace
from tars_bot.execution.processes import ProcessResult
from tars_bot.execution.sandbox import Jail, Sandbox
from tars_bot.git import NewContent
from tars_bot.models import CheckResult, ExecutionPlan, PlannedStep, RunAction, StepResult
from tars_bot.paths import Scope
from tars_bot.planning import actions
from tars_bot.records import journal
from tars_bot.validation.quickchecks import Change, needs_worktree, quick_checks
from tars_bot.validation.validator import Validator

MEMORY_HINTS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc")


@dataclass(frozen=True)
class StepContext:
    plan: ExecutionPlan
    execution_id: str
    config: Config
    validator: Validator
    sandbox: Sandbox
    on_output: Callable[[bytes], None] | None = None

    @property
    def improvement_json(self) -> str:
        return self.plan.improvement.model_dump_json(indent=2)


def commit_message(ctx: StepContext, step: PlannedStep) -> str:
    total = len(ctx.plan.steps)
    return (
        f"{step.name}\n\n"
        f'Step {step.number} of {total} of the improvement "{ctx.plan.improvement.title}".\n\n'
        f"{trailers(ctx, step)}"
    )


def trailers(ctx: StepContext, step: PlannedStep) -> str:
    """The trailers every commit of the step carries: history can be rebuilt from them."""
    return (
        f"Tars-Improvement: {ctx.plan.improvement.id}\n"
        f"Tars-Execution: {ctx.execution_id}\n"
        f"Tars-Step: {step.number}/{len(ctx.plan.steps)}\n"
    )


def run_in_worktree(
    ctx: StepContext,
    space: workspace.Workspace,
    step: PlannedStep,
    command: str | list[str],
    *,
    network: bool,
    inputs: dict[str, tuple[str, str]] | None = None,
) -> tuple[ProcessResult, str | None]:
    """Run `command` in the execution's worktree, sandboxed, under the step's limits, with the
    improvement and `inputs` (variable -> (file name, content)) given as files; (the process,
    what it did to git's own state, which was put back, or None)."""
    tree = space.checkout()
    jail = Jail.worktree_of(tree.path, network=network, max_file_mb=step.limits.max_file_mb)
    files = {"TARS_IMPROVEMENT_FILE": ("improvement.json", ctx.improvement_json), **(inputs or {})}
    with ctx.sandbox.scratch() as scratch:
        env = {"TARS_STEP": str(step.number), "TARS_WORKSPACE": str(tree.path)}
        for variable, (name, content) in files.items():
            env[variable] = scratch.put(name, content)
        own = [journal.EXECUTIONS + ctx.execution_id, *filter(None, [space.branch_ref])]
        sandboxed = ctx.sandbox.bwrap is not None
        prefix = ctx.config.branch_prefix
        with workspace.guard(space.repo, tree.path, own, sandboxed, prefix) as guard:
            proc = ctx.sandbox.run(
                command,
                jail,
                step.limits.step_timeout,
                step.limits.memory_mb,
                scratch=scratch,
                env=env,
                on_output=ctx.on_output,
            )
    return proc, guard.tampered


def stopped(proc: ProcessResult, step: PlannedStep) -> str | None:
    """Why the step's limits stopped the process, or None."""
    if proc.timed_out:
        return f"timed out after {step.limits.step_timeout}s (limits.step_timeout)"
    if proc.memory_exceeded:
        return f"its processes together used over {step.limits.memory_mb} MB (limits.memory_mb)"
    return None


def worktree_changes(space: workspace.Workspace, step: PlannedStep) -> list[str] | str:
    """The paths changed in the worktree since its commit, or why they may not be committed;
    ignored files are removed (not committed, so not left to influence the checks either)."""
    tree = space.checkout()
    changed, ignored = tree.changed_paths()
    tree.remove(ignored)
    return workspace.oversized(tree.path, changed, _max_file_bytes(step)) or changed


def _run(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, details: dict
) -> list[str] | str:
    """Run the step's command in the worktree: the changed paths, or why the step failed."""
    assert isinstance(step.action, RunAction)
    proc, tampered = run_in_worktree(
        ctx, space, step, step.action.command, network=ctx.config.allow_network
    )
    details.update(
        exit_code=proc.exit_code,
        peak_memory_mb=proc.peak_memory_mb,
        cpu_s=proc.cpu_s,
        network=proc.network,
        log=proc.output,
    )
    if reason := tampered or stopped(proc, step):
        return reason
    if proc.exit_code != 0:
        return f"command exited with code {proc.exit_code}{_hint(proc.output, step)}"
    return worktree_changes(space, step)


def _max_file_bytes(step: PlannedStep) -> int:
    return int(step.limits.max_file_mb * 1e6)


def _hint(output: bytes, step: PlannedStep) -> str:
    if any(h in output for h in MEMORY_HINTS):
        return f" (memory limit {step.limits.memory_mb} MB reached)"
    if b"Read-only file system" in output:
        return " (it tried to write outside its worktree, which the sandbox refuses)"
    return ""


def _apply(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, details: dict
) -> tuple[dict[str, NewContent] | None, str | None]:
    """Change the files: (changes, None) or (None, why the step failed)."""
    if isinstance(step.action, RunAction):
        outcome = _run(ctx, space, step, details)
        files = space.files()
    else:
        files = space.files()
        try:
            outcome = actions.apply(step.action, files)
        except actions.ActionProblem as e:
            outcome = f"{e.field}: {e}"
    if isinstance(outcome, str):
        return None, outcome
    return files.changes(outcome), None


def policy(ctx: StepContext, step: PlannedStep) -> workspace.Policy:
    """What the step's changes must keep to: its scope, the protected paths, the file size."""
    return workspace.Policy(
        scope=Scope(step.scope),
        protected=Scope(ctx.config.protected),
        max_file_bytes=_max_file_bytes(step),
    )


def step_checks(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, change: Change, commit: str
) -> list[CheckResult]:
    """The quick checks on `change` and the step's nox sessions, on `commit` (of its tree)."""
    enabled = ctx.config.quick_checks
    worktree = None
    if needs_worktree(space.repo, change.tree, change.paths, enabled):
        worktree = space.checkout()
        worktree.move_to(commit)
    checks = quick_checks(ctx.sandbox, space.repo, change, worktree, enabled)
    return checks + ctx.validator.run(commit, step.checks)


def apply_step(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep
) -> tuple[StepResult, bytes]:
    """Apply, check and commit one step; a failure is a result, not an exception."""
    start = time.monotonic()
    details: dict = {}
    parent_tree = space.repo.tree_of(space.head)
    changes, reason = _apply(ctx, space, step, details)
    commit, lines = None, 0
    if changes is not None:
        reason = workspace.anomaly(changes, policy(ctx, step), space.link_reader(changes))
    if reason is None and (staged := space.stage(changes or {})) is not None:
        tree, lines = staged
        size = sum(len(c.data) for c in (changes or {}).values() if c.data is not None)
        if lines > step.limits.max_changed_lines:
            reason = f"changed {lines} lines, over the limit of {step.limits.max_changed_lines}"
        elif size > step.limits.max_changed_bytes:
            limit = step.limits.max_changed_bytes
            reason = f"changed {size} bytes, over the limit of {limit} (limits.max_changed_bytes)"
        else:
            commit = space.commit(tree, sorted(changes or {}), commit_message(ctx, step))
    checks = []
    if commit:
        change = Change(tree, parent_tree, sorted(changes or {}))
        checks = step_checks(ctx, space, step, change, commit)
        if failed := next((c for c in checks if c.status == "failed"), None):
            reason = f"per-step check: {failed.describe()}"
    log = details.pop("log", b"")
    result = StepResult(
        number=step.number,
        name=step.name,
        state="failed" if reason else ("applied" if commit else "skipped"),
        checks=checks,
        commit=commit,
        changed_files=sorted(changes or {}) if commit else [],
        changed_lines=lines,
        duration_s=round(time.monotonic() - start, 3),
        reason=reason,
        **details,
    )
    return result, log
