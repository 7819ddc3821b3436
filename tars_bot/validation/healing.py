"""Self-healing: a step whose commit fails a per-step check is given to the repository's fixers
(`heal` in the config; `ruff check --fix` and `ruff format` by default) before it is failed.

Healers run in the step's worktree through the sandbox, under the step's limits, and what they
change must stay within the step's scope; then the step's checks run again on the healed tree.
When they pass, the heal becomes the step's second commit (trailer `Tars-Heal-Of: <step>`);
otherwise nothing of it is kept and the step fails as it would have. At most `heal_attempts`
rounds, each starting where the last one left the files.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tars_bot import faults
from tars_bot.execution import executor, workspace
from tars_bot.execution.executor import StepContext
from tars_bot.execution.sandbox import ruff_binary
from tars_bot.models import CheckResult, HealResult, PlannedStep, StepFailure, StepResult
from tars_bot.validation.quickchecks import Change, uses_ruff

PYTHON = (".py", ".pyi")


def wanted(ctx: StepContext, space: workspace.Workspace, result: StepResult) -> bool:
    """Whether `result` is a step committed but failing a per-step check, and a healer
    applies to it."""
    failed = any(c.fails for c in result.checks)
    if not failed or result.commit is None or ctx.config.heal_attempts == 0:
        return False
    return any(_argv(command, space, result) is not None for command in ctx.config.heal)


class _Candidate(NamedTuple):
    """A round's healed tree, as a commit no ref names yet, and the step's checks on it."""

    commit: str
    paths: list[str]
    lines: int
    checks: list[CheckResult]


@dataclass
class _Tried:
    commands: list[str] = field(default_factory=list)
    log: bytearray = field(default_factory=bytearray)
    paths: set[str] = field(default_factory=set)  # changed by healers, over all rounds


def heal(
    ctx: StepContext,
    space: workspace.Workspace,
    step: PlannedStep,
    failed: StepResult,
    journal_step: Callable[[StepResult], None],
) -> tuple[StepResult, bytes]:
    """The step healed (its heal commit on the branch), or failed as before, saying what
    healing tried; and the healers' output. `journal_step` records the intent to commit."""
    start = time.monotonic()
    worktree = space.checkout()
    before = [c for c in failed.checks if c.fails]
    tried, failing, previous = _Tried(), before, space.head
    why, rounds = "", 0
    for rounds in range(1, ctx.config.heal_attempts + 1):
        # from where the last round left the files, without what its checks left (__pycache__)
        worktree.reset_to(previous, space.branch_ref if previous == space.head else None)
        request = StepFailure(
            step=step.number,
            name=step.name,
            scope=step.scope,
            changed_files=failed.changed_files,
            failed_checks=failing,
            round=rounds,
            rounds=ctx.config.heal_attempts,
        )
        outcome = _round(ctx, space, step, failed, request, previous, tried)
        if isinstance(outcome, str):
            why = outcome
            break
        failing = [c for c in outcome.checks if c.fails]
        if not failing:
            result = _healed(failed, before, outcome, tried, rounds, time.monotonic() - start)
            _keep(space, outcome, result, journal_step)
            return result, bytes(tried.log)
        why = f"{failing[0].describe()} after healing"
        previous = outcome.commit
    worktree.reset_to(space.head, space.branch_ref)  # nothing of the heal is kept
    commands = ", ".join(dict.fromkeys(tried.commands))
    heal = HealResult(
        commands=tried.commands,
        rounds=rounds,
        failed=before,
        duration_s=round(time.monotonic() - start, 3),
    )
    reason = f"{failed.reason}; healing ({commands}) did not mend it: {why}"
    return failed.model_copy(update={"reason": reason, "heal": heal}), bytes(tried.log)


def _keep(
    space: workspace.Workspace,
    candidate: _Candidate,
    result: StepResult,
    journal_step: Callable[[StepResult], None],
) -> None:
    """The heal commit joins the branch, journaled first as the intent."""
    journal_step(result.model_copy(update={"state": "running"}))
    faults.point("after-heal-commit")
    space.advance(candidate.commit, candidate.paths)
    space.checkout().reset_to(space.head, space.branch_ref)


def _healed(
    failed: StepResult,
    before: list[CheckResult],
    candidate: _Candidate,
    tried: _Tried,
    rounds: int,
    duration_s: float,
) -> StepResult:
    heal = HealResult(
        commands=tried.commands,
        rounds=rounds,
        commit=candidate.commit,
        failed=before,
        fixed=[c.check for c in before],
        changed_files=candidate.paths,
        changed_lines=candidate.lines,
        duration_s=round(duration_s, 3),
    )
    # the step as the branch holds it: its checks are those of the healed tree
    return failed.model_copy(
        update={"state": "applied", "reason": None, "checks": candidate.checks, "heal": heal}
    )


def _round(
    ctx: StepContext,
    space: workspace.Workspace,
    step: PlannedStep,
    failed: StepResult,
    request: StepFailure,
    previous: str,
    tried: _Tried,
) -> _Candidate | str:
    """One round: the healers, then the step's checks on what they made; or why it ends."""
    if problem := _run_healers(ctx, space, step, failed, request, tried):
        return problem
    try:
        paths = executor.worktree_changes(space, step)
    except executor.StepFailed as e:
        return e.reason
    # the worktree may stand at the last round's candidate: what changed since the step counts
    tried.paths.update(paths)
    changes = space.files().changes(sorted(tried.paths))
    if problem := workspace.anomaly(
        changes, executor.policy(ctx, step), space.link_reader(changes)
    ):
        return f"its healers {problem}"
    staged = space.stage(changes)
    if staged is None or staged[0] == space.repo.tree_of(previous):
        return "its healers changed nothing" + (" more" if request.round > 1 else "")
    tree, lines = staged
    limit = step.limits.max_changed_lines
    if failed.changed_lines + lines > limit:
        total = failed.changed_lines + lines
        return f"the step and its heal changed {total} lines, over the limit of {limit}"
    before = [c.check for c in failed.checks if c.fails]
    commit = space.repo.create_commit(tree, [space.head], _message(ctx, step, before, tried))
    parent_tree = space.repo.tree_of(space.repo.parents(space.head)[0])
    change = Change(tree, parent_tree, sorted(set(failed.changed_files) | tried.paths))
    checks = executor.step_checks(ctx, space, step, change, commit)
    return _Candidate(commit, space.repo.changed_paths(space.head, commit), lines, checks)


def _run_healers(
    ctx: StepContext,
    space: workspace.Workspace,
    step: PlannedStep,
    failed: StepResult,
    request: StepFailure,
    tried: _Tried,
) -> str | None:
    """Each healer once, in order; why healing stops, or None."""
    inputs = {"TARS_FAILURE_FILE": ("failure.json", request.model_dump_json(indent=2))}
    for command in ctx.config.heal:
        argv = _argv(command, space, failed)
        if argv is None:
            continue
        tried.commands.append(command)
        tried.log += f"\n[tars-bot] heal round {request.round}: {command}\n".encode()
        network = ctx.config.allow_network and isinstance(argv, str)
        proc, tampered = executor.run_in_worktree(
            ctx, space, step, argv, network=network, inputs=inputs
        )
        tried.log += proc.output
        if problem := tampered or executor.stopped(proc, step):
            return f"`{command}` {problem}"
        if proc.exit_code != 0:
            return f"`{command}` exited with code {proc.exit_code}"
    return None


def _argv(command: str, space: workspace.Workspace, failed: StepResult) -> str | list[str] | None:
    """The healer as it runs: `ruff ...` is tars-bot's own ruff on the step's Python files
    (None when it has none, or the repository does not configure ruff); anything else runs
    as written, in a shell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if words[:1] != ["ruff"]:
        return command
    tree = space.repo.tree_of(space.head)
    files = [p for p in failed.changed_files if p.endswith(PYTHON) and space.repo.blob_id(tree, p)]
    if not files or not uses_ruff(space.repo, tree):
        return None
    flags = ["--no-cache", "--force-exclude"]
    if words[1:2] == ["check"]:  # findings it leaves are for the checks to judge
        flags.append("--exit-zero")
    return [ruff_binary(), *words[1:], *(f for f in flags if f not in words), "--", *files]


def _message(ctx: StepContext, step: PlannedStep, checks: list[str], tried: _Tried) -> str:
    commands = ", ".join(f"`{c}`" for c in dict.fromkeys(tried.commands))
    return (
        f"Heal step {step.number}: {', '.join(checks)}\n\n"
        f'Step {step.number} "{step.name}" failed {", ".join(checks)}; {commands} mended it.\n\n'
        f"{executor.trailers(ctx, step)}"
        f"Tars-Heal-Of: {step.number}\n"
    )
