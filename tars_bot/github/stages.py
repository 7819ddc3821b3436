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
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.github import gate_verbs, publish
from tars_bot.github.commands import Command, CommentEvent
from tars_bot.github.requests import (
    Context,
    Request,
    Seen,
    answer,
    authorized_comment,
    comment_request,
    improvement_of,
    log,
    merged_rollback,
    publish_execution,
    read_request,
    report,
    status_comment,
    working_on_it,
)
from tars_bot.github.verbs import handle_comment, on_workflow_run
from tars_bot.models import Execution, ExecutionPlan
from tars_bot.records import journal
from tars_bot.system import Silent
from tars_bot.ui import github_text, untrusted

RESULT = "result.json"
BUNDLE = "execution.bundle"


def authorize_stage(ctx: Context) -> int:
    """Check and acknowledge the command; tell the next jobs whether there is one to run."""
    if _watching(ctx):  # GitHub's own event: nobody to authorize, nothing untrusted to run
        return _outputs(ctx, act=True, execute=False)
    if "comment" not in ctx.payload:  # dispatched: by hand, or by the app that authorized it
        request = read_request(ctx)
        return _outputs(ctx, act=True, execute=_runs_code(ctx, request.event, request.command))
    event = authorized_comment(ctx)
    if event is None:
        return _outputs(ctx, act=False, execute=False)
    if status_comment(ctx.client, event) is not None:  # delivered again: acted on once
        print(f"tars-bot: comment {event.comment_id} was handled already")
        return _outputs(ctx, act=False, execute=False)
    ctx.client.react(event.comment_id, "eyes")
    request = comment_request(event)
    execute = _runs_code(ctx, event, request.command)
    if execute:  # the status comment the publish job finishes; others it writes itself
        working_on_it(ctx.client, event, request.line)
    return _outputs(ctx, act=True, execute=execute)


def _runs_code(ctx: Context, event: CommentEvent | None, command: Command | None) -> bool:
    """Whether the command runs checks on code in the execute job: an `execute`, or the
    rollback of a merged execution (a revert, checked as executions are)."""
    if command is None:
        return False
    if command.verb == "execute" or command.verb in gate_verbs.VERBS:
        return True  # a decision on a gate runs the next steps; a refused one, nothing
    try:
        return (
            event is not None
            and merged_rollback(ctx, event.issue_number, command, None) is not None
        )
    except TarsError:
        return False  # the publish job answers with what is wrong


def execute_stage(ctx: Context) -> int:
    """Run the improvement with a token that cannot write; hand over the report and bundle."""
    request = read_request(ctx)
    handoff = _handoff_dir(ctx)
    result: dict[str, object] = {}
    try:
        ok, body = _execute(ctx, request, handoff)
    except TarsError as e:
        ok, body = False, github_text.execute_failed(str(e))
    result |= {"ok": ok, "body": body}
    (handoff / RESULT).write_text(json.dumps(result))
    return 0  # the outcome travels in the hand-off; the publish job reports it


def publish_stage(ctx: Context) -> int:
    """Finish what the execute job started, or run a command that runs no improvement."""
    if _watching(ctx):
        return on_workflow_run(ctx)
    request = read_request(ctx)
    if request.event is None:  # dispatched by hand: the log is the report
        ok, body = _received(ctx, request)
        log(ctx, body)
        return 0 if ok else 1
    event, command = request.event, request.command
    revert = None
    if command is not None and command.verb == "rollback":
        with contextlib.suppress(TarsError):  # else answered below, saying what is wrong
            revert = merged_rollback(ctx, event.issue_number, command, "origin")
    gate = command is not None and command.verb in gate_verbs.VERBS
    if command is None or (command.verb != "execute" and revert is None and not gate):
        return handle_comment(ctx, event, request.head_sha, acknowledged=True)
    status = status_comment(ctx.client, event)
    try:
        ok, body = _published_gate(ctx, request) if gate else _received(ctx, request, revert)
    except TarsError as e:
        ok, body = False, github_text.command_failed(request.line, str(e))
    return answer(ctx.client, event, status, ok, body)


def _published_gate(ctx: Context, request: Request) -> tuple[bool, str]:
    """A decision on a gate: the execute job's bundle checked against what origin holds and
    the comment, then pushed; a reject that rolls back is made here (it runs no step)."""
    event, command = request.event, request.command
    assert event is not None and command is not None
    ctx.system.fetch_journal("origin", ctx.token)
    before = gate_verbs.parked(ctx, ctx.client.issue(event.issue_number))
    if before.state == "parked" and gate_verbs.runs_no_step(ctx, before, command):
        gate_verbs.continue_gate(ctx, before, event, command, Silent())
    else:
        old_record = ctx.system.repo.ref(journal.EXECUTIONS + before.id)
        received = _received(ctx, request)
        if ctx.system.status(before.id) == before:  # nothing handed over: the job's report
            return received
        gate_verbs.check_continued(ctx, before, old_record, event, command)
    ok, body = gate_verbs.after_gate(ctx, before.id, before.head_commit)
    return gate_verbs.follow(ctx, event, before.id, ok, body)


def _execute(ctx: Context, request: Request, handoff: Path) -> tuple[bool, str]:
    command = request.command
    assert command is not None
    if command.verb == "rollback":
        return _execute_revert(ctx, request, handoff)
    if command.verb in gate_verbs.VERBS:
        return _execute_gate(ctx, request, handoff)
    if request.event is not None:
        issue = ctx.client.issue(request.event.issue_number)
        if refusal := Seen(request.event, request.head_sha).changed(command, issue):
            return False, refusal
    plan = ctx.system.plan(improvement_of(ctx, request))
    asker = request.event.user_login if request.event else ctx.environ.get("GITHUB_ACTOR")
    result = ctx.system.execute(
        plan, dry_run=command.dry_run, progress=Silent(), requested_by=asker
    )
    parked = ctx.system.status(result.execution_id).state == "parked"
    if (result.success or parked) and not command.dry_run:  # a park is published as a success
        ctx.system.hand_off(result.execution_id, handoff / BUNDLE)
    return result.success or parked, report(ctx, result, command.dry_run)


def _execute_gate(ctx: Context, request: Request, handoff: Path) -> tuple[bool, str]:
    """The decision made and the steps after it run here, handed over as executions are; a
    rollback leaves nothing to hand over (the publish job makes it itself)."""
    assert request.event is not None and request.command is not None
    ctx.system.fetch_journal("origin", ctx.token)
    before = gate_verbs.parked(ctx, ctx.client.issue(request.event.issue_number))
    gate_verbs.continue_gate(ctx, before, request.event, request.command, Silent())
    after = ctx.system.status(before.id)
    if after.state in ("parked", "succeeded"):
        ctx.system.hand_off(after.id, handoff / BUNDLE)
    return after.state != "failed", publish.status_markdown(ctx.system, after.id)


def _execute_revert(ctx: Context, request: Request, handoff: Path) -> tuple[bool, str]:
    """A merged execution's revert, run and checked here, handed over as executions are."""
    assert request.event is not None and request.command is not None
    found = merged_rollback(ctx, request.event.issue_number, request.command, None)
    if found is None:
        return False, github_text.NOTHING_MERGED
    original, plan = found
    reverts = (original.id, request.command.step)
    result = ctx.system.execute(plan, progress=Silent(), reverts=reverts)
    if result.success:
        ctx.system.hand_off(result.execution_id, handoff / BUNDLE)
    return result.success, publish.status_markdown(ctx.system, result.execution_id)


def _received(
    ctx: Context, request: Request, revert: tuple[Execution, ExecutionPlan] | None = None
) -> tuple[bool, str]:
    """The execute job's outcome; a bundle only once it is checked here (against the plan of
    the improvement, or of the revert computed here), then published."""
    handoff = _handoff_dir(ctx)
    try:
        result = json.loads((handoff / RESULT).read_text())
    except (OSError, ValueError):
        return False, github_text.NO_RESULT
    # its report is shown, never believed: no marker or HTML comment survives from it
    shown = untrusted.without_comments(str(result.get("body", "")))
    bundle = handoff / BUNDLE
    if not result.get("ok") or not bundle.is_file():
        return bool(result.get("ok")), shown
    improvement = revert[1].improvement if revert else improvement_of(ctx, request)
    try:
        execution = ctx.system.receive(bundle, improvement)
    except TarsError as e:
        return False, github_text.result_refused(str(e))
    if request.command and request.command.verb in gate_verbs.VERBS:
        return True, ""  # published once checked against the decision (_published_gate)
    if execution.state == "parked":  # pushed up to its gate; a comment continues it
        return gate_verbs.after_gate(ctx, execution.id, None)
    ok, body = publish_execution(ctx, execution.id)
    if revert is None:
        return ok, body
    original, step = revert[0], request.command.step if request.command else None
    if ok and step is None:  # the command says so, not the bundle
        ctx.system.mark_reverted(original.id, execution.id, "origin", ctx.token)
    return ok, github_text.reverting(original.id, step, body)


def _watching(ctx: Context) -> bool:
    return ctx.environ.get("GITHUB_EVENT_NAME") == "workflow_run"


def _handoff_dir(ctx: Context) -> Path:
    path = Path(ctx.environ.get("TARS_BOT_HANDOFF") or "tars-bot-handoff")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _outputs(ctx: Context, *, act: bool, execute: bool) -> int:
    """Step outputs for the next jobs (GITHUB_OUTPUT), also printed for the log."""
    lines = f"act={str(act).lower()}\nexecute={str(execute).lower()}\n"
    print(f"tars-bot: {lines.strip().replace(chr(10), ', ')}")
    if output := ctx.environ.get("GITHUB_OUTPUT") or os.environ.get("GITHUB_OUTPUT"):
        with Path(output).open("a", encoding="utf-8") as handle:
            handle.write(lines)
    return 0
