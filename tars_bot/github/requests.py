"""One request to tars-bot on GitHub, whichever job or host handles it: its context, the comment
or dispatch inputs that carry it, who may make it, the improvement it is about, the status
comment that answers it, and publishing what it executed. The Action (action.py), its split
stages (stages.py) and the app's local workers (local.py) all go through here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tars_bot.errors import TarsError
from tars_bot.github import publish
from tars_bot.github.client import GitHubClient, Issue, pull_number
from tars_bot.github.commands import (
    DEFAULT_ALLOWED,
    DIGEST_SHOWN,
    Command,
    CommandError,
    CommentEvent,
    authorize,
    body_digest,
    command_line,
    parse_command,
    parse_event,
    refuse,
)
from tars_bot.models import Execution, ExecutionPlan, Improvement
from tars_bot.planning import loader
from tars_bot.system import ExecutionResult, ExecutionSystem
from tars_bot.ui import github_text, untrusted

YAML_BLOCK = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# the last line of a body tars-bot wrote: user text above it is escaped, logs are fenced
EXECUTION_MARKER = re.compile(r"<!-- tars-bot:execution=([\w.-]+) -->\s*\Z")


@dataclass(frozen=True)
class Context:
    environ: Mapping[str, str]
    client: GitHubClient
    system: ExecutionSystem
    payload: dict[str, Any]

    @property
    def token(self) -> str | None:
        return self.environ.get("GITHUB_TOKEN")

    @property
    def allowed(self) -> frozenset[str]:
        given = self.environ.get("TARS_BOT_ALLOWED_PERMISSIONS", "")
        return frozenset(given.replace(",", " ").split()) or DEFAULT_ALLOWED

    @property
    def allow_forks(self) -> bool:
        return self.environ.get("TARS_BOT_ALLOW_FORKS", "").lower() in ("1", "true", "yes")


def log(ctx: Context, report: str) -> None:
    """A report that quotes the improvement's output, in the job's log, acting there as no
    workflow command."""
    with untrusted.no_workflow_commands(ctx.environ):
        print(report)


# -- what is asked ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """The comment (or the app's dispatch) being handled, and its command line; or, dispatched
    by hand, the improvement to execute (event None)."""

    event: CommentEvent | None
    line: str
    head_sha: str | None = None  # a pull request's head when the app authorized the command
    improvement_id: str | None = None

    @property
    def command(self) -> Command | None:
        """The command on the line; None when there is none, or a malformed one (answered
        with the usage where the comment is handled)."""
        try:
            return parse_command(self.line)
        except CommandError:
            return None


def read_request(ctx: Context) -> Request:
    """The request of the event: the workflow_dispatch inputs, else the comment."""
    if (request := dispatched(ctx)) is not None:
        return request
    return comment_request(parse_event(ctx.payload))


def comment_request(event: CommentEvent) -> Request:
    return Request(event, (command_line(event.body) or "").strip())


def dispatched(ctx: Context) -> Request | None:
    """The request that workflow_dispatch inputs carry: `issue-number` and `comment-id` (a
    comment the webhook app authorized), or `improvement-id` and `command` (by hand); None
    when they carry neither."""
    inputs = ctx.payload.get("inputs") or {}
    if inputs.get("issue-number") and inputs.get("comment-id"):
        # GitHub only lets people with write access start a workflow by hand
        event = dispatched_event(ctx, inputs)
        return Request(event, event.body, inputs.get("head-sha") or None)
    if improvement_id := inputs.get("improvement-id"):
        line = f"/tars-bot {inputs.get('command') or 'execute'}"
        return Request(None, line, improvement_id=improvement_id)
    return None


def dispatched_event(ctx: Context, inputs: Mapping[str, str]) -> CommentEvent:
    """The comment the webhook app authorized, as the workflow_dispatch inputs carry it (the
    app binds an issue's execute to its body with --digest in the command)."""
    number = int(inputs["issue-number"])
    sender = ctx.payload.get("sender", {}).get("login", "")
    return CommentEvent(
        action="created",
        comment_id=int(inputs["comment-id"]),
        body=inputs.get("command", ""),
        user_login=sender,
        user_type="User",
        issue_number=number,
        is_pull_request=ctx.client.issue(number).is_pull_request,
        repository=ctx.client.repository,
        sender=sender,
    )


def authorized_comment(ctx: Context) -> CommentEvent | None:
    """The comment of the event when it is a command its author may give; None when it is no
    command, or when its author may not (who is told so, once per issue)."""
    event = parse_event(ctx.payload)
    if command_line(event.body) is None:
        return None  # not addressed to tars-bot; a malformed command gets the usage
    decision = authorize(ctx.client, event, ctx.allowed)
    if not decision.allowed:
        refuse(ctx.client, event, decision)
        print(f"tars-bot: not acting: {decision.reason}")
        return None
    return event


@dataclass(frozen=True)
class Seen:
    """What the commenter saw: the issue body in the comment's event, the head of a pull request
    when the webhook app authorized the command (either may be unknown)."""

    event: CommentEvent
    head_sha: str | None

    def changed(self, command: Command, issue: Issue) -> str | None:
        """Why `issue` is no longer what the command approved, or None."""
        if issue.is_pull_request:
            if self.head_sha is not None and issue.head_sha != self.head_sha:
                return github_text.PULL_REQUEST_CHANGED
            return None
        now = body_digest(issue.body)
        seen = self.event.issue_body
        if (seen is None or body_digest(seen) == now) and now.startswith(command.digest or ""):
            return None
        return github_text.issue_edited(issue.number, now[:DIGEST_SHOWN])


# -- the status comment ----------------------------------------------------------------------------
def working_on_it(client: GitHubClient, event: CommentEvent, line: str) -> int:
    """The status comment that says the command is taken; its id."""
    body = f"{github_text.working_on_it(line)}\n\n{github_text.handled_marker(event.comment_id)}"
    return client.comment(event.issue_number, body)


def status_comment(client: GitHubClient, event: CommentEvent) -> int | None:
    """The status comment answering the command, if there is one."""
    return client.find_comment(event.issue_number, github_text.handled_marker(event.comment_id))


def answer(
    client: GitHubClient, event: CommentEvent, status: int | None, ok: bool, body: str
) -> int:
    """Finish the status comment (or write it, when `status` is None) with `body`, and react to
    the command with how it went; the job's exit code."""
    body = f"{body}\n\n{github_text.handled_marker(event.comment_id)}"
    if status is None:
        client.comment(event.issue_number, body)
    else:
        client.edit_comment(status, body)
    client.react(event.comment_id, "+1" if ok else "-1")
    return 0 if ok else 1


# -- what it is about ------------------------------------------------------------------------------
def improvement_of(ctx: Context, request: Request) -> Improvement:
    """The improvement as the default branch or the approved issue body has it."""
    if request.event is None:
        path = ctx.system.improvement_file(request.improvement_id or "")
        return ctx.system.load_improvement(path)
    return improvement_from(ctx, ctx.client.issue(request.event.issue_number))


def improvement_from(ctx: Context, issue: Issue) -> Improvement:
    """An issue's first yaml block, or the improvement of the execution behind a pull request."""
    if issue.is_pull_request:
        return ctx.system.plan_of(execution_for(ctx, issue).id).improvement
    block = YAML_BLOCK.search(issue.body)
    if block is None:
        raise TarsError(f"issue #{issue.number} has no ```yaml block describing the improvement")
    source = f"issue #{issue.number}"
    data = loader.parse_text(block.group(1), source, ".yaml")
    if isinstance(data, dict):
        data.setdefault("title", issue.title)
    return loader.improvement_from_data(data, source, f"issue-{issue.number}")


def execution_for(ctx: Context, issue: Issue) -> Execution:
    """The execution whose marker ends the body of a pull request tars-bot opened (a marker
    anyone else wrote is ignored), else the latest of the issue's improvement."""
    found = EXECUTION_MARKER.search(issue.body)
    if found and ctx.client.is_ours(issue.author):
        return ctx.system.status(found.group(1))
    improvement_id = f"issue-{issue.number}"
    latest = next((e for e in ctx.system.history() if e.improvement == improvement_id), None)
    if latest is None:
        raise TarsError(f"#{issue.number} has no tars-bot execution yet")
    return latest


def landing_from_github(
    ctx: Context, execution: Execution, remote: str | None = "origin"
) -> Execution:
    """What GitHub knows of the execution's pull request (merged as which commit, or closed),
    recorded (and pushed to `remote`): a squash whose message lost tars-bot's trailers is
    found only so."""
    number = pull_number(execution.pull_request)
    if number is None or execution.state != "succeeded":
        return execution
    pull = ctx.client.issue(number)
    merged = pull.merge_commit_sha if pull.merged else None
    closed = pull.state == "closed"
    return ctx.system.record_landing(execution.id, merged, closed, remote, ctx.token)


def merged_rollback(
    ctx: Context, issue_number: int, command: Command | None, remote: str | None
) -> tuple[Execution, ExecutionPlan] | None:
    """When `command` rolls back a merged execution: that execution and the plan of its
    revert, computed here from git (the split workflow's jobs each compute it, and the publish
    job believes the execute job's bundle only as far as it matches). None otherwise."""
    if command is None or command.verb != "rollback":
        return None
    ctx.system.fetch_journal("origin", ctx.token)
    execution = execution_for(ctx, ctx.client.issue(issue_number))
    execution = landing_from_github(ctx, execution, remote)
    if ctx.system.status(execution.id).state != "merged":
        return None
    plan = ctx.system.revert_plan(execution.id, command.step, ctx.client.default_branch())
    return execution, plan


# -- what it did -----------------------------------------------------------------------------------
def report(ctx: Context, result: ExecutionResult, dry_run: bool) -> str:
    """An execution's status, with its diff when it was a dry run."""
    body = publish.status_markdown(ctx.system, result.execution_id)
    return github_text.with_diff(body, result.diff) if dry_run else body


def publish_execution(ctx: Context, execution_id: str) -> tuple[bool, str]:
    """Push the execution and open its pull request; whether that worked, and the answer."""
    warnings: list[str] = []

    def warn(text: str) -> None:
        print(f"tars-bot: {text}")
        warnings.append(text)

    publish.job_summary(ctx.system, execution_id, ctx.environ, warn)
    try:
        url = publish.publish(ctx.system, ctx.client, execution_id, ctx.token, warn=warn)
    except TarsError as e:
        status = publish.status_markdown(ctx.system, execution_id)
        return False, github_text.publish_failed(ctx.system.status(execution_id), str(e), status)
    status = publish.status_markdown(ctx.system, execution_id)
    return True, github_text.executed(url, warnings, status)
