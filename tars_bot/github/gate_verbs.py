"""Gates decided by comments: `/tars-bot approve|reject|pause|resume` on the issue or pull
request of a parked execution, and what a run that parks publishes.

Nothing waits: the run that parks pushes the branch (up to the gate) and the journal, and ends;
the run a decision starts fetches both, and gates.py checks the decision against the gate (its
commit, tree and plan digest) and journals it, with the comment's id, before anything acts on
it: a comment delivered twice is acted on once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from tars_bot.errors import TarsError
from tars_bot.execution import gates
from tars_bot.github import publish
from tars_bot.github.requests import Context, execution_for, publish_execution
from tars_bot.models import Execution
from tars_bot.ui import github_text

if TYPE_CHECKING:  # verbs.py imports this module for its table of verbs
    from tars_bot.github.verbs import Asked


def approve(ctx: Context, asked: Asked) -> tuple[bool, str]:
    execution = _parked(ctx, asked)
    command = asked.command
    through = len(ctx.system.plan_of(execution.id).steps) if command.approve_all else None
    ask = _ask(ctx, asked, "approve", through=through or command.through)
    ctx.system.approve(execution.id, ask, asked.progress)
    return after_gate(ctx, execution.id, execution.head_commit)


def reject(ctx: Context, asked: Asked) -> tuple[bool, str]:
    execution = _parked(ctx, asked)
    ask = _ask(ctx, asked, "reject", reason=asked.command.reason)
    ctx.system.reject(execution.id, ask, asked.progress)
    return after_gate(ctx, execution.id, execution.head_commit)


def resume(ctx: Context, asked: Asked) -> tuple[bool, str]:
    """A paused execution, or one whose decided gate a stopped run left."""
    execution = _parked(ctx, asked)
    ctx.system.resume(execution.id, asked.progress)
    return after_gate(ctx, execution.id, execution.head_commit)


def pause(ctx: Context, asked: Asked) -> tuple[bool, str]:
    # the running job is on another runner, reading a ref only its own repository holds
    raise TarsError(
        "a running execution cannot be paused from a comment yet; give the improvement "
        "`approval: each_step` (or run_steps) to have it park after each step"
    )


def after_gate(ctx: Context, execution_id: str, old_tip: str | None) -> tuple[bool, str]:
    """Publish where the execution is now: parked again (branch and journal pushed, the gate
    shown), done (its pull request), or rolled back or failed (the remote follows)."""
    execution = ctx.system.status(execution_id)
    if execution.state == "parked":
        ctx.system.push(execution_id, "origin", ctx.token)
        status = publish.status_markdown(ctx.system, execution_id)
        return True, github_text.parked(execution, status)
    if execution.state == "succeeded":
        return publish_execution(ctx, execution_id)
    ctx.system.update_remote(execution_id, old_tip, ctx.token)
    rejected = execution.state == "rolled_back"
    return rejected, publish.status_markdown(ctx.system, execution_id)


def _parked(ctx: Context, asked: Asked) -> Execution:
    """The execution the comment is about, with its branch as origin has it (this run's
    checkout has only the default branch)."""
    execution = execution_for(ctx, asked.issue)
    if execution.state == "parked":
        ctx.system.fetch_branch(execution.id, "origin", ctx.token)
    return ctx.system.status(execution.id)


def _ask(
    ctx: Context,
    asked: Asked,
    verdict: Literal["approve", "reject"],
    through: int | None = None,
    reason: str = "",
) -> gates.Ask:
    event = asked.seen.event
    return gates.Ask(
        verdict,
        by=event.user_login,
        via="comment",
        step=asked.command.step,
        sha=asked.command.sha,
        comment_id=event.comment_id,
        # asked again, not taken from authorization: the journal records what GitHub said
        permission=ctx.client.permission(event.user_login),
        through=through,
        reason=reason,
    )
