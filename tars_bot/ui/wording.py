"""Plain wording shared by the terminal (report.py) and GitHub (markdown.py): one line each for
what happened to an execution, its steps, checks and culprits. No markup of any kind."""

from __future__ import annotations

from tars_bot.models import Culprit, Execution, PlannedStep, RunAction, SandboxReport, StepResult
from tars_bot.ui import untrusted

# the journal's states and exception names in the words text output uses; JSON keeps the raw
# values, which programs match on
_WORDS = {
    "rolled_back": "rolled back",
    "parked": "waiting for approval",
    "skipped": "changed nothing",
    "KeyboardInterrupt": "stopped by Ctrl-C",
    "Terminated": "stopped by SIGTERM",
}


GATE_MARK = "\u23f8"  # ⏸: parks for a person's approval


def approve_command(execution: Execution) -> str | None:
    """The exact command that continues a parked execution, or None if it is not parked."""
    return execution.continue_with


def gate_line(execution: Execution) -> str | None:
    """ "step 3/5 ⏸ waiting for approval (expires 2026-12-22T08:30:12+00:00)", or None."""
    gate = execution.gate
    if execution.state not in ("parked", "expired") or gate is None:
        return None
    total = len(execution.steps)
    if execution.state == "expired":
        return f"step {gate.step}/{total} {GATE_MARK} approval expired at {gate.expires_at}"
    what = "paused" if gate.kind == "pause" else words("parked")
    if gate.status != "pending":
        what = f"{gate.status}, not yet resumed"
    return f"step {gate.step}/{total} {GATE_MARK} {what} (expires {gate.expires_at})"


def words(state: str) -> str:
    """An execution's or step's state (or an exception that ended it) for people."""
    return _WORDS.get(state, state)


def steps_done(execution: Execution) -> str:
    """ "4 of 4 steps (1 changed nothing)": a step that changed nothing is done too."""
    steps = execution.steps
    noop = sum(s.state == "skipped" for s in steps)
    done = sum(s.state == "applied" for s in steps) + noop
    return f"{done} of {len(steps)} steps" + (f" ({noop} changed nothing)" if noop else "")


def step_changes(step: PlannedStep) -> str:
    if step.action.kind == "run":
        assert isinstance(step.action, RunAction)
        return f"$ {step.action.command}"
    return ", ".join(map(untrusted.path, step.files or []))


def timespan(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _by_step(culprits: list[Culprit]) -> dict[int | None, list[Culprit]]:
    grouped: dict[int | None, list[Culprit]] = {}
    for culprit in culprits:
        grouped.setdefault(culprit.step, []).append(culprit)
    return grouped


def _found(culprits: list[Culprit]) -> str:
    runs = sum(c.runs for c in culprits)
    if runs == 0:
        return "found from cached results"
    spent = timespan(sum(c.duration_s for c in culprits))
    return f"found in {runs} run{'s' if runs != 1 else ''}, {spent}"


def blame(culprits: list[Culprit], execution: Execution) -> str:
    """What one step (all `culprits` name it) broke, and how it was found."""
    checks = ", ".join(c.check for c in culprits)
    step = culprits[0].step
    if step is None:
        return f"{checks} failed on the base commit already ({_found(culprits)})"
    name = next(s.name for s in execution.steps if s.number == step)
    return f'step {step} "{name}" broke {checks} ({_found(culprits)})'


def _dropped(culprits: list[Culprit], execution: Execution) -> str:
    step = next(s for s in execution.steps if s.number == culprits[0].step)
    revert = f" (revert {step.revert_commit[:7]})" if step.revert_commit else ""
    built_on = [s.number for s in execution.steps if s.reason == f"built on step {step.number}"]
    also = ""
    if built_on:
        also = f", with step{'s' if len(built_on) > 1 else ''} {_numbers(built_on)} built on it"
    return f"{blame(culprits, execution)} and was dropped{also}{revert}"


def _numbers(numbers: list[int]) -> str:
    head = ", ".join(map(str, numbers[:-1]))
    return f"{head} and {numbers[-1]}" if head else str(numbers[-1])


def is_dropped(culprit: Culprit, execution: Execution) -> bool:
    return any(s.number == culprit.step and s.state == "reverted" for s in execution.steps)


def verdict(execution: Execution) -> str:
    """One line: how the execution ended, and which step broke which check."""
    groups = _by_step(execution.culprits).values()
    dropped = [_dropped(g, execution) for g in groups if is_dropped(g[0], execution)]
    if execution.state == "succeeded":
        where = f"on branch {execution.branch}" if execution.branch else "(dry run, no branch)"
        text = f"succeeded {where} with {steps_done(execution)}"
        known = [f"{c.check} passed with {c.known()}" for c in execution.checks if c.known()]
        stale = [f"checks {execution.checks_stale}"] if execution.checks_stale else []
        notes = dropped + known + stale
        return text + (": " + "; ".join(notes) if notes else "")
    if execution.state == "unvalidated":
        return execution.failure_reason or "could not validate"
    if execution.state in ("merged", "reverted", "closed"):
        return lifecycle(execution)
    reason = words(execution.failure_reason or "no reason recorded")
    text = f"{words(execution.state)}: {reason}"
    blamed = [g for g in groups if not is_dropped(g[0], execution)]
    return text + (f"; {_found(blamed[-1])}" if blamed else "")


def lifecycle(execution: Execution) -> str:
    """What became of a published execution: merged (and how), reverted, or closed."""
    if execution.state == "closed":
        return "its pull request was closed unmerged"
    landed = execution.landed
    how = f"merged ({landed.kind} {landed.commit[:10]})" if landed else "merged"
    if execution.state == "reverted":
        return f"{how}, then reverted by execution {execution.reverted_by}"
    return how


def sandbox_line(sandbox: SandboxReport) -> str:
    """How the execution's processes were isolated, in one line."""
    if not sandbox.sandboxed:
        return 'NOT SANDBOXED (sandbox = "off"): steps ran as ordinary processes of the user'
    return f"{sandbox.mechanism}, network {sandbox.network} for steps, memory: {sandbox.memory}"


def state_text(step: StepResult) -> str:
    """The step's state, with why it was reverted, or what healing mended."""
    if step.state == "reverted" and step.reason:
        return f"{step.state} ({step.reason})"
    if step.state == "applied" and step.heal and step.heal.commit:
        return f"applied (healed: {', '.join(step.heal.fixed)})"
    return words(step.state)


def healed_line(step: StepResult) -> str | None:
    """What healing did for a step, in one line; None when it did not run."""
    heal = step.heal
    if heal is None:
        return None
    failed = ", ".join(c.check for c in heal.failed)
    commands = ", ".join(dict.fromkeys(heal.commands))
    if heal.commit is None:
        return f'step {step.number} "{step.name}" failed {failed}; {commands} did not mend it'
    files = f"{len(heal.changed_files)} file{'s' if len(heal.changed_files) != 1 else ''}"
    return (
        f'step {step.number} "{step.name}" failed {failed}; {commands} mended it '
        f"(commit {heal.commit[:10]}, {files})"
    )


def probe_where(commit: str, step: int | None) -> str:
    """A commit as validation names it: its short id and the step it holds."""
    label = {None: "", 0: " (base)"}.get(step, f" (step {step})")
    return f"{commit[:7]}{label}"
