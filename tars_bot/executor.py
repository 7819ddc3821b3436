"""Applying one planned step in a worktree: action, monitoring, commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tars_bot import actions, workspace
from tars_bot.config import Config
from tars_bot.git import NewContent, Worktree
from tars_bot.models import ExecutionPlan, PlannedStep, RunAction, StepResult
from tars_bot.paths import Scope
from tars_bot.quickchecks import quick_checks
from tars_bot.validator import Validator

MEMORY_HINTS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc")


@dataclass(frozen=True)
class StepContext:
    plan: ExecutionPlan
    execution_id: str
    config: Config
    improvement_file: Path
    git_dir: Path
    validator: Validator
    on_output: Callable[[bytes], None] | None = None


def commit_message(ctx: StepContext, step: PlannedStep) -> str:
    total = len(ctx.plan.steps)
    return (
        f"{step.name}\n\n"
        f'Step {step.number} of {total} of the improvement "{ctx.plan.improvement.title}".\n\n'
        f"Tars-Improvement: {ctx.plan.improvement.id}\n"
        f"Tars-Execution: {ctx.execution_id}\n"
        f"Tars-Step: {step.number}/{total}\n"
    )


def _run(ctx: StepContext, tree: Worktree, step: PlannedStep, details: dict) -> list[str] | str:
    """Run the step's command in the worktree: the changed paths, or why the step failed."""
    assert isinstance(step.action, RunAction)
    extra = {
        "TARS_IMPROVEMENT_FILE": str(ctx.improvement_file),
        "TARS_STEP": str(step.number),
        "TARS_WORKSPACE": str(tree.path),
    }
    guard = workspace.GitDirGuard(tree.path, ctx.git_dir)
    with workspace.step_home() as home:
        env = workspace.step_environment(ctx.config.pass_env, extra, home)
        proc = workspace.run_process(
            step.action.command,
            tree.path,
            env,
            step.limits,
            allow_network=ctx.config.allow_network,
            on_output=ctx.on_output,
        )
    details.update(
        exit_code=proc.exit_code,
        peak_memory_mb=proc.peak_memory_mb,
        cpu_s=proc.cpu_s,
        network=proc.network,
        log=proc.output,
    )
    if proc.timed_out:
        return f"timed out after {step.limits.step_timeout}s (limits.step_timeout)"
    if proc.exit_code != 0:
        hint = any(h in proc.output for h in MEMORY_HINTS)
        limit = f" (memory limit {step.limits.memory_mb} MB reached)" if hint else ""
        return f"command exited with code {proc.exit_code}{limit}"
    return guard.tampered() or tree.changed_paths()


def _apply(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, details: dict
) -> tuple[dict[str, NewContent] | None, str | None]:
    """Change the files: (changes, None) or (None, why the step failed)."""
    if isinstance(step.action, RunAction):
        outcome = _run(ctx, space.checkout(), step, details)
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


def apply_step(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep
) -> tuple[StepResult, bytes]:
    """Apply, check and commit one step; a failure is a result, not an exception."""
    start = time.monotonic()
    details: dict = {}
    changes, reason = _apply(ctx, space, step, details)
    policy = workspace.Policy(
        scope=Scope(step.scope),
        protected=Scope(ctx.config.protected),
        max_file_bytes=int(step.limits.max_file_mb * 1e6),
    )
    commit, lines = None, 0
    if changes is not None:
        reason = workspace.anomaly(changes, policy)
    if reason is None and (staged := space.stage(changes or {})) is not None:
        tree, lines = staged
        if lines > step.limits.max_changed_lines:
            reason = f"changed {lines} lines, over the limit of {step.limits.max_changed_lines}"
        else:
            commit = space.commit(tree, sorted(changes or {}), commit_message(ctx, step))
    checks = []
    if commit:
        checks = quick_checks(space.repo, tree, sorted(changes or {}))
        checks += ctx.validator.run(commit, step.checks)
        if failed := next((c for c in checks if not c.passed), None):
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
