"""Applying one planned step in a worktree: action, monitoring, commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tars_bot import actions, workspace
from tars_bot.config import Config
from tars_bot.git import Worktree
from tars_bot.models import ExecutionPlan, PlannedStep, RunAction, StepResult
from tars_bot.paths import Scope

MEMORY_HINTS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc")


@dataclass(frozen=True)
class StepContext:
    plan: ExecutionPlan
    execution_id: str
    config: Config
    improvement_file: Path
    guard: workspace.GitDirGuard
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


def _run(ctx: StepContext, tree: Worktree, step: PlannedStep, result: dict) -> list[str] | str:
    assert isinstance(step.action, RunAction)
    extra = {
        "TARS_IMPROVEMENT_FILE": str(ctx.improvement_file),
        "TARS_STEP": str(step.number),
        "TARS_WORKSPACE": str(tree.path),
    }
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
    result.update(
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
    return tree.changed_paths()


def apply_step(ctx: StepContext, tree: Worktree, step: PlannedStep) -> tuple[StepResult, bytes]:
    """Apply, check and commit one step; a failure is a result, not an exception."""
    start = time.monotonic()
    details: dict = {}
    if isinstance(step.action, RunAction):
        outcome = _run(ctx, tree, step, details)
    else:
        try:
            outcome = actions.apply(step.action, workspace.WorktreeFiles(tree.path))
        except actions.ActionProblem as e:
            outcome = f"{e.field}: {e}"
    log = details.pop("log", b"")
    policy = workspace.Policy(
        scope=Scope(step.scope),
        protected=Scope(ctx.config.protected),
        max_file_bytes=int(step.limits.max_file_mb * 1e6),
    )
    reason = ctx.guard.tampered() or (
        outcome if isinstance(outcome, str) else workspace.anomaly(tree.path, outcome, policy)
    )
    commit, lines, paths = None, 0, [] if isinstance(outcome, str) else outcome
    if reason is None and (staged := tree.stage(paths)) is not None:
        tree_id, lines = staged
        if lines > step.limits.max_changed_lines:
            reason = f"changed {lines} lines, over the limit of {step.limits.max_changed_lines}"
        else:
            commit = tree.commit(tree_id, commit_message(ctx, step))
    state = "failed" if reason else ("applied" if commit else "skipped")
    result = StepResult(
        number=step.number,
        name=step.name,
        state=state,
        commit=commit,
        changed_files=paths if commit else [],
        changed_lines=lines,
        duration_s=round(time.monotonic() - start, 3),
        reason=reason,
        **details,
    )
    return result, log
