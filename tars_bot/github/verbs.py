"""Answering a comment command in one job: each verb (plan, execute, status, rollback, history,
help) and the status comment that follows it to the end, whatever happens."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tars_bot.errors import TarsError
from tars_bot.github import gate_verbs, publish, watch
from tars_bot.github.client import GitHubClient, Issue
from tars_bot.github.commands import (
    DIGEST_SHOWN,
    USAGE,
    Command,
    CommandError,
    CommentEvent,
    body_digest,
    command_line,
    parse_command,
)
from tars_bot.github.requests import (
    Context,
    Seen,
    answer,
    execution_for,
    improvement_from,
    landing_from_github,
    log,
    publish_execution,
    report,
    status_comment,
    working_on_it,
)
from tars_bot.models import AFTER_MERGE, Improvement, StepResult
from tars_bot.system import Progress, Silent
from tars_bot.ui import github_text, markdown, untrusted


def handle_comment(
    ctx: Context, event: CommentEvent, head_sha: str | None = None, acknowledged: bool = False
) -> int:
    """Acknowledge (unless the webhook app did), run the command, and always finish with a
    reaction and a status comment. `head_sha`: the pull request's head when the command was
    authorized, if known."""
    number = event.issue_number
    if status_comment(ctx.client, event) is not None:
        print(f"tars-bot: comment {event.comment_id} was handled already")
        return 0
    if not acknowledged:
        ctx.client.react(event.comment_id, "eyes")
    line = (command_line(event.body) or event.body.split("\n", 1)[0]).strip()
    status = working_on_it(ctx.client, event, line)
    try:
        command = parse_command(line)
        if command is None:
            raise CommandError(f"not a command: {line!r}")
        progress = CommentProgress(ctx.client, status, line, event.comment_id)
        asked = Asked(command, ctx.client.issue(number), Seen(event, head_sha), progress)
        ok, body = _dispatch(ctx, asked)
    except CommandError as e:
        problem, _, usage = str(e).partition("\n\n")
        ok, body = False, github_text.usage(problem, usage)
    except TarsError as e:
        ok, body = False, github_text.command_failed(line, str(e))
    except Exception as e:  # the bot must never acknowledge and then go silent
        with untrusted.no_workflow_commands(ctx.environ, sys.stderr.write):
            traceback.print_exc()
        ok, body = False, github_text.internal_error(line, e)
    return answer(ctx.client, event, status, ok, body)


@dataclass(frozen=True)
class Asked:
    """A command, the issue or pull request it was given on, and what its giver saw there."""

    command: Command
    issue: Issue
    seen: Seen
    progress: Progress


Verb = Callable[[Context, Asked], tuple[bool, str]]


def _dispatch(ctx: Context, asked: Asked) -> tuple[bool, str]:
    if asked.issue.from_fork and not ctx.allow_forks:
        return False, github_text.NO_FORKS
    ctx.system.fetch_journal("origin", ctx.token)
    return VERBS[asked.command.verb](ctx, asked)


def _help(ctx: Context, asked: Asked) -> tuple[bool, str]:
    return True, github_text.usage(None, USAGE)


def _history(ctx: Context, asked: Asked) -> tuple[bool, str]:
    return True, github_text.history_markdown(ctx.system.history(10))


def _plan(ctx: Context, asked: Asked) -> tuple[bool, str]:
    issue = asked.issue
    plan = ctx.system.plan(improvement_from(ctx, issue), source=f"issue #{issue.number}")
    digest = None if issue.is_pull_request else body_digest(issue.body)[:DIGEST_SHOWN]
    return True, markdown.plan_markdown(
        plan, f"#{issue.number}", github_text.next_after_plan(digest)
    )


def _execute_verb(ctx: Context, asked: Asked) -> tuple[bool, str]:
    if refusal := asked.seen.changed(asked.command, asked.issue):
        return False, refusal
    improvement = improvement_from(ctx, asked.issue)
    asker = asked.seen.event.user_login
    return execute(ctx, improvement, asked.command.dry_run, asked.progress, asker)


def _status(ctx: Context, asked: Asked) -> tuple[bool, str]:
    execution = execution_for(ctx, asked.issue)
    return True, publish.status_markdown(ctx.system, execution.id)


def _rollback(ctx: Context, asked: Asked) -> tuple[bool, str]:
    command = asked.command
    execution = landing_from_github(ctx, execution_for(ctx, asked.issue))
    if ctx.system.status(execution.id).state in AFTER_MERGE:
        return _revert(ctx, execution.id, command)
    if execution.is_rolled_back(command.step):  # idempotent: nothing to do, nothing to follow
        return True, publish.status_markdown(ctx.system, execution.id)
    rolled = ctx.system.rollback(execution.id, command.step, command.cascade, token=ctx.token)
    whole = command.step is None or rolled.state == "rolled_back"
    publish.follow_rollback(ctx.system, ctx.client, rolled.id, whole=whole)
    return True, publish.status_markdown(ctx.system, rolled.id)


VERBS: dict[str, Verb] = {
    "help": _help,
    "history": _history,
    "plan": _plan,
    "execute": _execute_verb,
    "status": _status,
    "rollback": _rollback,
    **dict.fromkeys(gate_verbs.VERBS, gate_verbs.answer),
}


class CommentProgress(Silent):
    """Edits the status comment as each step finishes: the thread shows the execution live."""

    def __init__(self, client: GitHubClient, comment_id: int, title: str, answering: int) -> None:
        self.client, self.comment_id, self.title = client, comment_id, title
        self.marker = github_text.handled_marker(answering)
        self.lines: list[str] = []

    def step_finished(self, result: StepResult) -> None:
        self.lines.append(github_text.step_line(result))
        body = f"{github_text.running(self.title, self.lines)}\n\n{self.marker}"
        try:
            self.client.edit_comment(self.comment_id, body)
        except TarsError as e:  # a missed progress update must not stop the execution
            print(f"tars-bot: could not update the status comment: {e}")


def execute(
    ctx: Context,
    improvement: Improvement,
    dry_run: bool,
    progress: Progress | None = None,
    requested_by: str | None = None,
) -> tuple[bool, str]:
    """Plan and execute the improvement, then publish it (unless it failed or was a dry run).
    `requested_by`: who asked (the commenter; by default whoever started the workflow)."""
    plan = ctx.system.plan(improvement)
    requester = requested_by or ctx.environ.get("GITHUB_ACTOR")
    result = ctx.system.execute(plan, dry_run=dry_run, progress=progress, requested_by=requester)
    if ctx.system.status(result.execution_id).state == "parked":  # the run ends; a comment resumes
        return gate_verbs.after_gate(ctx, result.execution_id, None)
    if result.success and not dry_run:
        return publish_execution(ctx, result.execution_id)
    return result.success, report(ctx, result, dry_run)


def _revert(ctx: Context, execution_id: str, command: Command) -> tuple[bool, str]:
    """A merged execution's rollback: its revert pull request, from the default branch."""
    if command.cascade:
        raise TarsError("--cascade is for an unmerged branch; a merged step reverts alone")
    onto = ctx.client.default_branch()
    result = ctx.system.revert(execution_id, command.step, onto, remote="origin", token=ctx.token)
    if not result.success:
        body = publish.status_markdown(ctx.system, result.execution_id)
        return False, github_text.revert_failed(execution_id, body)
    ok, body = publish_execution(ctx, result.execution_id)
    return ok, github_text.reverting(execution_id, command.step, body)


def open_revert(ctx: Context, execution_id: str) -> str | None:
    """The revert pull request of a merged execution, for the watcher; the revert execution's
    id, or None when it failed (reported in the log)."""
    onto = ctx.client.default_branch()
    result = ctx.system.revert(execution_id, onto=onto, remote="origin", token=ctx.token)
    if not result.success:
        log(ctx, publish.status_markdown(ctx.system, result.execution_id))
        return None
    ok, body = publish_execution(ctx, result.execution_id)
    log(ctx, body)
    return result.execution_id if ok else None


def on_workflow_run(ctx: Context) -> int:
    """A CI workflow finished on the default branch: is a tars-bot change to blame?"""
    said = watch.handle(
        ctx.system, ctx.client, ctx.payload, ctx.token, lambda e: open_revert(ctx, e)
    )
    print(f"tars-bot: {said}")
    return 0
