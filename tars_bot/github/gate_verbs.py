"""Gates decided by comments: `/tars-bot approve|reject|pause|resume` on the issue or pull
request of a parked execution, and what a run that parks publishes.

Nothing waits: the run that parks pushes the branch (up to the gate) and the journal, and ends;
the run a decision starts fetches both, and gates.py checks the decision against the gate (its
commit, tree and plan digest) and journals it, with the comment's id, before anything acts on
it: a comment delivered twice is acted on once. In the split workflow the decision is made and
the steps run in the execute job; the publish job believes its bundle only when it holds
exactly that decision on what origin held (`check_continued`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tars_bot.config import config_at
from tars_bot.errors import TarsError
from tars_bot.execution import gates
from tars_bot.github import publish
from tars_bot.github.client import Issue
from tars_bot.github.commands import Command, CommentEvent, command_line
from tars_bot.github.requests import Context, execution_for, publish_execution
from tars_bot.models import Execution
from tars_bot.records import journal
from tars_bot.system import Progress
from tars_bot.ui import github_text

if TYPE_CHECKING:  # verbs.py imports this module for its table of verbs
    from tars_bot.github.verbs import Asked

VERBS = ("approve", "reject", "pause", "resume")
HANDLED = re.compile(r"<!-- tars-bot:comment=\d+ -->\s*\Z")


def answer(ctx: Context, asked: Asked) -> tuple[bool, str]:
    """A gate verb handled in one job (the Action unsplit, the app's local worker)."""
    before = parked(ctx, asked.issue)
    continue_gate(ctx, before, asked.seen.event, asked.command, asked.progress)
    ok, body = after_gate(ctx, before.id, before.head_commit)
    return follow(ctx, asked.seen.event, before.id, ok, body)


def follow(
    ctx: Context, event: CommentEvent, execution_id: str, ok: bool, body: str
) -> tuple[bool, str]:
    """The execution's status comment (the one that showed its first gate) edited in place to
    `body`, and the decision's reply saying so; with none found, the reply is `body`."""
    marker = github_text.gates_marker(execution_id)
    found = ctx.client.find_comment(event.issue_number, marker)
    if found is None:
        return ok, body
    # it still answers the comment that started the execution: once, as every comment
    handled = HANDLED.search(ctx.client.comment_text(found))
    kept = [] if marker in body else [marker]
    ctx.client.edit_comment(
        found, "\n\n".join([body, *kept, *([handled.group(0)] if handled else [])])
    )
    line = (command_line(event.body) or "").strip()
    return ok, github_text.followed(ctx.system.status(execution_id), line)


def parked(ctx: Context, issue: Issue) -> Execution:
    """The execution the comment is about (its journal fetched already), with its branch as
    origin has it: this run's checkout has only the default branch."""
    execution = execution_for(ctx, issue)
    if execution.state == "parked":
        ctx.system.fetch_branch(execution.id, "origin", ctx.token)
    return ctx.system.status(execution.id)


def continue_gate(
    ctx: Context, execution: Execution, event: CommentEvent, command: Command, progress: Progress
) -> None:
    """Decide as the comment says (journaled first), then continue the execution."""
    if command.verb == "pause":
        # the running job is on another runner, reading a ref only its own repository holds
        raise TarsError(
            "a running execution cannot be paused from a comment yet; give the improvement "
            "`approval: each_step` (or run_steps) to have it park after each step"
        )
    if command.verb == "resume":
        ctx.system.resume(execution.id, progress)
        return
    through = command.through
    if command.approve_all:
        through = len(ctx.system.plan_of(execution.id).steps)
    ask = gates.Ask(
        "approve" if command.verb == "approve" else "reject",
        by=event.user_login,
        via="comment",
        step=command.step,
        sha=command.sha,
        through=through,
        reason=command.reason,
        comment_id=event.comment_id,
        # asked again, not taken from authorization: the journal records what GitHub said
        permission=ctx.client.permission(event.user_login),
    )
    decide = ctx.system.approve if ask.verdict == "approve" else ctx.system.reject
    decide(execution.id, ask, progress)


def runs_no_step(ctx: Context, execution: Execution, command: Command) -> bool:
    """A reject that rolls the execution back: the publish job may act on it itself."""
    on_reject = config_at(ctx.system.repo, execution.base_commit).on_reject
    return command.verb == "reject" and on_reject == "rollback"


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


def check_continued(
    ctx: Context, before: Execution, old_record: str | None, event: CommentEvent, command: Command
) -> None:
    """What the execute job handed over continues `before` (as origin held it) by this
    comment's decision alone: its journal and branch only added to, the gate it was parked
    at decided by the commenter through this comment (or as decided already), earlier gates
    untouched, no approval in advance beyond what the comment gave. Raises TarsError."""
    after = ctx.system.status(before.id)
    repo, gate = ctx.system.repo, before.gate
    record = repo.ref(journal.EXECUTIONS + before.id)

    def refuse(why: str) -> TarsError:
        return TarsError(f"the execute job's result is refused: {why}; nothing was pushed")

    if before.state != "parked" or gate is None or old_record is None or record is None:
        raise refuse(f"execution {before.id} was {before.state}, not parked")
    if not repo.is_ancestor(old_record, record):
        raise refuse("its journal does not continue the one origin holds")
    if after.head_commit and not repo.is_ancestor(gate.commit, after.head_commit):
        raise refuse(f"its branch does not continue the gate's commit {gate.commit[:10]}")
    known = len(before.gates)
    if after.gates[: known - 1] != before.gates[:-1] or len(after.gates) < known:
        raise refuse("it changed earlier gates")
    decided = after.gates[known - 1]
    same = (decided.id, decided.commit, decided.tree, decided.plan_digest)
    if same != (gate.id, gate.commit, gate.tree, gate.plan_digest) or decided.decision is None:
        raise refuse(f"gate {gate.id} is not the one decided")
    d = decided.decision
    if gate.decision is not None:
        if d != gate.decision:
            raise refuse(f"it changed the decision on gate {gate.id}")
    elif (d.comment_id, d.by, d.via, d.verdict) != (
        event.comment_id,
        event.user_login,
        "comment",
        command.verb,
    ):
        raise refuse(f"gate {gate.id} was not decided by comment {event.comment_id}")
    given = len(ctx.system.plan_of(before.id).steps) if command.approve_all else command.through
    if after.approved_through not in (before.approved_through, given):
        raise refuse("it approves steps in advance that the comment did not")
