"""The Action split by privilege (`TARS_BOT_STAGE`), as the shipped workflow runs it:

authorize  (may write issues)   checks the commenter, acknowledges, says whether to execute
execute    (read-only token)    runs the improvement; leaves the report and, on success, a git
                                bundle of the branch and journal in TARS_BOT_HANDOFF
publish    (may push)           checks the bundle against the plan computed here (handoff.py),
                                pushes, opens the pull request, finishes the status comment;
                                commands that run no improvement (status, rollback...) run here

Nothing the improvement controls runs where a write token is; what the execute job hands over
is believed only after it is checked.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.github import action, publish
from tars_bot.github.client import GitHubClient
from tars_bot.github.commands import (
    Command,
    CommandError,
    CommentEvent,
    authorize,
    command_line,
    parse_command,
    parse_event,
    refuse,
)
from tars_bot.models import Execution, ExecutionPlan, Improvement
from tars_bot.system import Silent
from tars_bot.ui import markdown, untrusted

RESULT = "result.json"
BUNDLE = "execution.bundle"


@dataclass(frozen=True)
class _Request:
    """The comment (or the app's dispatch) being handled, and its command; or, dispatched by
    hand, the improvement to execute (event None)."""

    event: CommentEvent | None
    command: Command | None
    head_sha: str | None = None
    improvement_id: str | None = None


def authorize_stage(ctx: action.Context) -> int:
    """Check and acknowledge the command; tell the next jobs whether there is one to run."""
    if _watching(ctx):  # GitHub's own event: nobody to authorize, nothing untrusted to run
        return _outputs(ctx, act=True, execute=False)
    if "comment" not in ctx.payload:  # dispatched: by hand, or by the app that authorized it
        request = _request(ctx)
        return _outputs(ctx, act=True, execute=_runs_code(ctx, request.event, request.command))
    event = parse_event(ctx.payload)
    if command_line(event.body) is None:
        return _outputs(ctx, act=False, execute=False)
    decision = authorize(ctx.client, event, ctx.allowed)
    if not decision.allowed:
        refuse(ctx.client, event, decision)
        print(f"tars-bot: not acting: {decision.reason}")
        return _outputs(ctx, act=False, execute=False)
    ctx.client.react(event.comment_id, "eyes")
    line = (command_line(event.body) or "").strip()
    execute = _runs_code(ctx, event, _command(line))
    if execute:  # the status comment the publish job finishes; others it writes itself
        working_on_it(ctx.client, event, line)
    return _outputs(ctx, act=True, execute=execute)


def _runs_code(ctx: action.Context, event: CommentEvent | None, command: Command | None) -> bool:
    """Whether the command runs checks on code in the execute job: an `execute`, or the
    rollback of a merged execution (a revert, checked as executions are)."""
    if command is None:
        return False
    if command.verb == "execute":
        return True
    try:
        return (
            event is not None
            and action.merged_rollback(ctx, event.issue_number, command, None) is not None
        )
    except TarsError:
        return False  # the publish job answers with what is wrong


def working_on_it(client: GitHubClient, event: CommentEvent, line: str) -> None:
    """The status comment that `publish_stage` finishes."""
    client.comment(event.issue_number, f"⏳ `{line}`: working on it…\n\n{_handled(event)}")


def execute_stage(ctx: action.Context) -> int:
    """Run the improvement with a token that cannot write; hand over the report and bundle."""
    request = _request(ctx)
    handoff = _handoff_dir(ctx)
    result: dict[str, object] = {}
    try:
        ok, body = _execute(ctx, request, handoff)
    except TarsError as e:
        ok, body = False, f"❌ `execute` failed:\n\n{untrusted.code_block(str(e))}"
    result |= {"ok": ok, "body": body}
    (handoff / RESULT).write_text(json.dumps(result))
    return 0  # the outcome travels in the hand-off; the publish job reports it


def publish_stage(ctx: action.Context) -> int:
    """Finish what the execute job started, or run a command that runs no improvement."""
    if _watching(ctx):
        return action.on_workflow_run(ctx)
    request = _request(ctx)
    if request.event is None:  # dispatched by hand: the log is the report
        ok, body = _received(ctx, request)
        action.log(ctx, body)
        return 0 if ok else 1
    revert = None
    if request.command is not None and request.command.verb == "rollback":
        with contextlib.suppress(TarsError):  # else answered below, saying what is wrong
            revert = action.merged_rollback(
                ctx, request.event.issue_number, request.command, "origin"
            )
    if request.command is None or (request.command.verb != "execute" and revert is None):
        return action.handle_comment(ctx, request.event, request.head_sha, acknowledged=True)
    status = ctx.client.find_comment(request.event.issue_number, _handled(request.event))
    ok, body = _received(ctx, request, revert)
    body = f"{body}\n\n{_handled(request.event)}"
    if status is None:
        ctx.client.comment(request.event.issue_number, body)
    else:
        ctx.client.edit_comment(status, body)
    ctx.client.react(request.event.comment_id, "+1" if ok else "-1")
    return 0 if ok else 1


def _execute(ctx: action.Context, request: _Request, handoff: Path) -> tuple[bool, str]:
    assert request.command is not None
    if request.command.verb == "rollback":
        return _execute_revert(ctx, request, handoff)
    if request.event is not None:
        issue = ctx.client.issue(request.event.issue_number)
        if refusal := action.Seen(request.event, request.head_sha).changed(request.command, issue):
            return False, refusal
    plan = ctx.system.plan(_improvement(ctx, request))
    result = ctx.system.execute(plan, dry_run=request.command.dry_run, progress=Silent())
    if result.success and not request.command.dry_run:
        ctx.system.hand_off(result.execution_id, handoff / BUNDLE)
    body = publish.status_markdown(ctx.system, result.execution_id)
    if request.command.dry_run and result.diff is not None:
        body += "\n\n" + markdown.diff_details(result.diff)
    return result.success, body


def _execute_revert(ctx: action.Context, request: _Request, handoff: Path) -> tuple[bool, str]:
    """A merged execution's revert, run and checked here, handed over as executions are."""
    assert request.event is not None and request.command is not None
    found = action.merged_rollback(ctx, request.event.issue_number, request.command, None)
    if found is None:
        return False, "❌ nothing merged to revert here: see `/tars-bot status`."
    original, plan = found
    reverts = (original.id, request.command.step)
    result = ctx.system.execute(plan, progress=Silent(), reverts=reverts)
    if result.success:
        ctx.system.hand_off(result.execution_id, handoff / BUNDLE)
    return result.success, publish.status_markdown(ctx.system, result.execution_id)


def _received(
    ctx: action.Context,
    request: _Request,
    revert: tuple[Execution, ExecutionPlan] | None = None,
) -> tuple[bool, str]:
    """The execute job's outcome; a bundle only once it is checked here (against the plan of
    the improvement, or of the revert computed here), then published."""
    handoff = _handoff_dir(ctx)
    try:
        result = json.loads((handoff / RESULT).read_text())
    except (OSError, ValueError):
        return False, "❌ the execute job left no result: see the workflow run's log."
    # its report is shown, never believed: no marker or HTML comment survives from it
    shown = untrusted.without_comments(str(result.get("body", "")))
    bundle = handoff / BUNDLE
    if not result.get("ok") or not bundle.is_file():
        return bool(result.get("ok")), shown
    improvement = revert[1].improvement if revert else _improvement(ctx, request)
    try:
        execution = ctx.system.receive(bundle, improvement)
    except TarsError as e:
        return False, (
            "❌ The execute job's result was refused, so nothing was pushed:\n\n"
            + untrusted.code_block(str(e))
        )
    ok, body = action.publish_execution(ctx, execution.id)
    if revert is None:
        return ok, body
    original, step = revert[0], request.command.step if request.command else None
    if ok and step is None:  # the command says so, not the bundle
        ctx.system.mark_reverted(original.id, execution.id, "origin", ctx.token)
    what = f"step {step} of " if step else ""
    return ok, f"↩️ Reverting {what}execution `{original.id}` (it is merged):\n\n{body}"


def _improvement(ctx: action.Context, request: _Request) -> Improvement:
    """The improvement as the default branch or the approved issue body has it."""
    if request.event is None:
        path = ctx.system.improvement_file(request.improvement_id or "")
        return ctx.system.load_improvement(path)
    return action.improvement_from(ctx, ctx.client.issue(request.event.issue_number))


def _request(ctx: action.Context) -> _Request:
    inputs = ctx.payload.get("inputs") or {}
    if inputs.get("improvement-id") and not inputs.get("comment-id"):
        command = _command(f"/tars-bot {inputs.get('command') or 'execute'}")
        return _Request(None, command, improvement_id=inputs["improvement-id"])
    if inputs.get("comment-id"):
        event = action.dispatched_event(ctx, inputs)
        return _Request(event, _command(event.body), inputs.get("head-sha") or None)
    event = parse_event(ctx.payload)
    return _Request(event, _command((command_line(event.body) or "").strip()))


def _command(line: str) -> Command | None:
    """The command on `line`; None when there is none, or a malformed one (which the publish
    job answers with the usage, through the Action's own handling)."""
    try:
        return parse_command(line)
    except CommandError:
        return None


def _watching(ctx: action.Context) -> bool:
    return ctx.environ.get("GITHUB_EVENT_NAME") == "workflow_run"


def _handled(event: CommentEvent) -> str:
    return f"<!-- tars-bot:comment={event.comment_id} -->"


def _handoff_dir(ctx: action.Context) -> Path:
    path = Path(ctx.environ.get("TARS_BOT_HANDOFF") or "tars-bot-handoff")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _outputs(ctx: action.Context, *, act: bool, execute: bool) -> int:
    """Step outputs for the next jobs (GITHUB_OUTPUT), also printed for the log."""
    lines = f"act={str(act).lower()}\nexecute={str(execute).lower()}\n"
    print(f"tars-bot: {lines.strip().replace(chr(10), ', ')}")
    if output := ctx.environ.get("GITHUB_OUTPUT") or os.environ.get("GITHUB_OUTPUT"):
        with Path(output).open("a", encoding="utf-8") as handle:
            handle.write(lines)
    return 0
