"""Applying one planned step in a worktree: action, monitoring, commit."""

from __future__ import annotations

import dataclasses
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
from tars_bot.validation.final_checks import Baseline
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


class StepFailed(Exception):
    """Why a step cannot be committed: raised where it is found, caught once in `apply_step`
    (and by healing), where it becomes the step's result."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RunDetails:
    """What the step's process did, for its result and its log."""

    exit_code: int | None = None
    peak_memory_mb: float | None = None
    cpu_s: float | None = None
    network: str | None = None
    log: bytes = b""

    def for_result(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "log" and v is not None}


def worktree_changes(space: workspace.Workspace, step: PlannedStep) -> list[str]:
    """The paths changed in the worktree since its commit; ignored files are removed (not
    committed, so not left to influence the checks either). Raises StepFailed for a file over
    the size limit."""
    tree = space.checkout()
    changed, ignored = tree.changed_paths()
    tree.remove(ignored)
    if too_large := workspace.oversized(tree.path, changed, _max_file_bytes(step)):
        raise StepFailed(too_large)
    return changed


def _run(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, details: RunDetails
) -> list[str]:
    """Run the step's command in the worktree; the changed paths."""
    assert isinstance(step.action, RunAction)
    proc, tampered = run_in_worktree(
        ctx, space, step, step.action.command, network=ctx.config.allow_network
    )
    details.exit_code, details.peak_memory_mb = proc.exit_code, proc.peak_memory_mb
    details.cpu_s, details.network, details.log = proc.cpu_s, proc.network, proc.output
    if reason := tampered or stopped(proc, step):
        raise StepFailed(reason)
    if proc.exit_code != 0:
        raise StepFailed(f"command exited with code {proc.exit_code}{_hint(proc.output, step)}")
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
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, details: RunDetails
) -> dict[str, NewContent]:
    """Change the files; what they now hold."""
    if isinstance(step.action, RunAction):
        paths = _run(ctx, space, step, details)
        return space.files().changes(paths)
    files = space.files()
    try:
        paths = actions.apply(step.action, files)
    except actions.ActionProblem as e:
        raise StepFailed(f"{e.field}: {e}") from None
    return files.changes(paths)


def _commit(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep, changes: dict[str, NewContent]
) -> tuple[str, str, int] | None:
    """Commit the step's changes within its policy and limits: (commit, tree, changed lines),
    or None when they change nothing."""
    if reason := workspace.anomaly(changes, policy(ctx, step), space.link_reader(changes)):
        raise StepFailed(reason)
    staged = space.stage(changes)
    if staged is None:
        return None
    tree, lines = staged
    size = sum(len(c.data) for c in changes.values() if c.data is not None)
    if lines > step.limits.max_changed_lines:
        raise StepFailed(
            f"changed {lines} lines, over the limit of {step.limits.max_changed_lines}"
        )
    if size > step.limits.max_changed_bytes:
        limit = step.limits.max_changed_bytes
        raise StepFailed(
            f"changed {size} bytes, over the limit of {limit} (limits.max_changed_bytes)"
        )
    return space.commit(tree, sorted(changes), commit_message(ctx, step)), tree, lines


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
    return checks + [against_base(ctx.validator, r) for r in ctx.validator.run(commit, step.checks)]


def against_base(validator: Validator, result: CheckResult) -> CheckResult:
    """A session failing after a step is the step's failure only where it adds failures to the
    base's: the base is probed once (then cached by tree). Where that cannot be told (the base
    fails too, and without per-test results to compare), the check could not judge the step."""
    if result.status != "failed":
        return result
    judged = Baseline(validator).judge(result)
    if judged is None:
        return result
    if isinstance(judged, str):
        summary = f"fails on the base too, and {judged}"
        return result.model_copy(update={"status": "error", "summary": summary})
    return judged


def apply_step(
    ctx: StepContext, space: workspace.Workspace, step: PlannedStep
) -> tuple[StepResult, bytes]:
    """Apply, check and commit one step; a failure is a result, not an exception."""
    start = time.monotonic()
    details = RunDetails()
    parent_tree = space.repo.tree_of(space.head)
    changes: dict[str, NewContent] = {}
    commit, lines, checks, reason = None, 0, [], None
    try:
        changes = _apply(ctx, space, step, details)
        if committed := _commit(ctx, space, step, changes):
            commit, tree, lines = committed
            checks = step_checks(
                ctx, space, step, Change(tree, parent_tree, sorted(changes)), commit
            )
            if failed := next((c for c in checks if c.fails), None):
                reason = f"per-step check: {failed.describe()}"
    except StepFailed as e:
        reason = e.reason
    result = StepResult(
        number=step.number,
        name=step.name,
        state="failed" if reason else ("applied" if commit else "skipped"),
        checks=checks,
        commit=commit,
        changed_files=sorted(changes) if commit else [],
        changed_lines=lines,
        duration_s=round(time.monotonic() - start, 3),
        reason=reason,
        **details.for_result(),
    )
    return result, details.log
