"""`tars-bot action`: the GitHub Action entrypoint, dispatching on the workflow's event.

issue_comment      `/tars-bot ...` commands on issues (the improvement is the issue's first
                   fenced yaml block) and on tars-bot's pull requests (found by their marker)
workflow_dispatch  inputs `improvement-id` and `command`, or `issue-number` and `comment-id`
                   (how the webhook app hands over a comment it authorized)
pull_request       comments the plan of improvement files the pull request adds or changes
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.github import publish
from tars_bot.github.client import GitHubClient, Issue, pull_number
from tars_bot.github.commands import (
    DEFAULT_ALLOWED,
    DIGEST_SHOWN,
    USAGE,
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
from tars_bot.models import (
    AFTER_MERGE,
    CheckResult,
    Execution,
    ExecutionPlan,
    Improvement,
    PlannedStep,
    StepResult,
)
from tars_bot.planning import loader
from tars_bot.system import ExecutionSystem, Progress
from tars_bot.ui import markdown, untrusted

YAML_BLOCK = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# the last line of a body tars-bot wrote: user text above it is escaped, logs are fenced
EXECUTION_MARKER = re.compile(r"<!-- tars-bot:execution=([\w.-]+) -->\s*\Z")
IMPROVEMENT_FILE = re.compile(r"^\.tars/improvements/[^/]+\.(ya?ml|toml|json)$")
ClientFactory = Callable[[Mapping[str, str]], GitHubClient]


@dataclass(frozen=True)
class Context:
    environ: Mapping[str, str]
    client: GitHubClient
    system: ExecutionSystem
    payload: dict

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


def run(
    environ: Mapping[str, str], repo: Path | str = ".", client_factory: ClientFactory | None = None
) -> int:
    """Handle the event GitHub Actions describes in `environ`; the exit code of the job."""
    event_name = environ.get("GITHUB_EVENT_NAME", "")
    handler = {"issue_comment": _on_comment, "workflow_dispatch": _on_dispatch}.get(event_name)
    handler = handler or {"pull_request": _on_pull_request, "workflow_run": on_workflow_run}.get(
        event_name
    )
    if handler is None:
        print(f"tars-bot: nothing to do for a {event_name or 'missing'} event")
        return 0
    try:
        payload = json.loads(Path(environ["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
    except (KeyError, OSError, ValueError) as e:
        raise TarsError(f"GITHUB_EVENT_PATH: cannot read the event payload: {e}") from None
    stage = environ.get("TARS_BOT_STAGE") or "all"
    if stage != "all" and event_name != "pull_request":
        from tars_bot.github import stages

        handler = {
            "authorize": stages.authorize_stage,
            "execute": stages.execute_stage,
            "publish": stages.publish_stage,
        }.get(stage)
        if handler is None:
            raise TarsError(f"TARS_BOT_STAGE: {stage!r} is not all, authorize, execute or publish")
    with (client_factory or GitHubClient.from_env)(environ) as client:
        return handler(Context(environ, client, ExecutionSystem(repo), payload))


def _on_comment(ctx: Context) -> int:
    event = parse_event(ctx.payload)
    if command_line(event.body) is None:
        return 0  # not addressed to tars-bot; a malformed command gets the usage
    decision = authorize(ctx.client, event, ctx.allowed)
    if not decision.allowed:
        refuse(ctx.client, event, decision)
        print(f"tars-bot: not acting: {decision.reason}")
        return 0
    return handle_comment(ctx, event)


def _on_dispatch(ctx: Context) -> int:
    inputs = ctx.payload.get("inputs") or {}
    if inputs.get("issue-number") and inputs.get("comment-id"):
        # handed over by the webhook app, which authorized the commenter; GitHub only lets
        # people with write access start a workflow by hand
        head_sha = inputs.get("head-sha") or None
        return handle_comment(ctx, dispatched_event(ctx, inputs), head_sha, acknowledged=True)
    improvement_id = inputs.get("improvement-id")
    if not improvement_id:
        raise TarsError("workflow_dispatch needs the input improvement-id (or issue-number)")
    command = parse_command(f"/tars-bot {inputs.get('command') or 'execute'}")
    assert command is not None
    path = ctx.system.improvement_file(improvement_id)
    improvement = ctx.system.load_improvement(path)
    ok, body = _execute(ctx, improvement, command.dry_run)
    log(ctx, body)
    return 0 if ok else 1


def log(ctx: Context, report: str) -> None:
    """A report that quotes the improvement's output, in the job's log, acting there as no
    workflow command."""
    with untrusted.no_workflow_commands(ctx.environ):
        print(report)


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


def handle_comment(
    ctx: Context, event: CommentEvent, head_sha: str | None = None, acknowledged: bool = False
) -> int:
    """Acknowledge (unless the webhook app did), run the command, and always finish with a
    reaction and a status comment. `head_sha`: the pull request's head when the command was
    authorized, if known."""
    number = event.issue_number
    handled = f"<!-- tars-bot:comment={event.comment_id} -->"
    if ctx.client.find_comment(number, handled) is not None:
        print(f"tars-bot: comment {event.comment_id} was handled already")
        return 0
    if not acknowledged:
        ctx.client.react(event.comment_id, "eyes")
    first_line = (command_line(event.body) or event.body.split("\n", 1)[0]).strip()
    status = ctx.client.comment(number, f"⏳ `{first_line}`: working on it…\n\n{handled}")
    try:
        command = parse_command(first_line)
        if command is None:
            raise CommandError(f"not a command: {first_line!r}")
        issue = ctx.client.issue(number)
        progress = CommentProgress(ctx.client, status, first_line, handled)
        ok, body = _dispatch(ctx, command, issue, Seen(event, head_sha), progress)
    except CommandError as e:
        problem, _, usage = str(e).partition("\n\n")
        ok, body = False, f"❌ {problem}\n\n```\n{usage}\n```"
    except TarsError as e:
        ok, body = (
            False,
            (
                f"❌ `{first_line}` failed:\n\n{untrusted.code_block(str(e))}\n\n"
                f"**Next**: fix what the message says, then comment `{first_line}` again."
            ),
        )
    except Exception as e:  # the bot must never acknowledge and then go silent
        with untrusted.no_workflow_commands(ctx.environ, sys.stderr.write):
            traceback.print_exc()
        said = untrusted.for_markdown(f"{type(e).__name__}: {e}")
        ok, body = False, f"❌ `{first_line}` failed with an internal error: {said}"
    ctx.client.edit_comment(status, f"{body}\n\n{handled}")
    ctx.client.react(event.comment_id, "+1" if ok else "-1")
    return 0 if ok else 1


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
                return "❌ the pull request changed since the command; comment again."
            return None
        now = body_digest(issue.body)
        seen = self.event.issue_body
        if (seen is None or body_digest(seen) == now) and now.startswith(command.digest or ""):
            return None
        return (
            f"❌ #{issue.number} was edited after the command, so nothing ran: tars-bot runs only "
            "the improvement the commenter saw.\n\n**Next**: read the issue again, then comment "
            f"`/tars-bot execute --digest {now[:DIGEST_SHOWN]}` to run it as it is now."
        )


def _dispatch(
    ctx: Context, command: Command, issue: Issue, seen: Seen, progress: Progress
) -> tuple[bool, str]:
    if issue.from_fork and not ctx.allow_forks:
        return False, "❌ tars-bot does not act on pull requests from forks here."
    ctx.system.fetch_journal("origin", ctx.token)
    if command.verb == "help":
        return True, f"```\n{USAGE}\n```"
    if command.verb == "history":
        return True, _history_markdown(ctx.system.history(10))
    if command.verb == "plan":
        improvement = improvement_from(ctx, issue)
        plan = ctx.system.plan(improvement, source=f"issue #{issue.number}")
        return True, markdown.plan_markdown(plan, f"#{issue.number}", _next_after_plan(issue))
    if command.verb == "execute":
        if refusal := seen.changed(command, issue):
            return False, refusal
        improvement = improvement_from(ctx, issue)
        return _execute(ctx, improvement, command.dry_run, progress)
    execution = _execution_for(ctx, issue)
    if command.verb == "status":
        return True, publish.status_markdown(ctx.system, execution.id)
    return _rollback(ctx, execution, command)


def _next_after_plan(issue: Issue) -> str:
    if issue.is_pull_request:
        return "**Next**: comment `/tars-bot execute` to run it again on the default branch."
    digest = body_digest(issue.body)[:DIGEST_SHOWN]
    return (
        f"**Next**: comment `/tars-bot execute --digest {digest}` to run this plan: it runs only "
        f"while the issue is as planned here (body digest `{digest}`); add `--dry-run` to try it "
        "without a branch. To change it, edit the issue and comment `/tars-bot plan` again."
    )


def improvement_from(ctx: Context, issue: Issue) -> Improvement:
    """An issue's first yaml block, or the improvement of the execution behind a pull request."""
    if issue.is_pull_request:
        return ctx.system.plan_of(_execution_for(ctx, issue).id).improvement
    block = YAML_BLOCK.search(issue.body)
    if block is None:
        raise TarsError(f"issue #{issue.number} has no ```yaml block describing the improvement")
    source = f"issue #{issue.number}"
    data = loader.parse_text(block.group(1), source, ".yaml")
    if isinstance(data, dict):
        data.setdefault("title", issue.title)
    return loader.improvement_from_data(data, source, f"issue-{issue.number}")


def _execution_for(ctx: Context, issue: Issue) -> Execution:
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


class CommentProgress:
    """Edits the status comment as each step finishes: the thread shows the execution live."""

    def __init__(self, client: GitHubClient, comment_id: int, title: str, marker: str) -> None:
        self.client, self.comment_id, self.title, self.marker = client, comment_id, title, marker
        self.lines: list[str] = []

    def step_started(self, step: PlannedStep) -> None:
        pass

    def step_finished(self, result: StepResult) -> None:
        icon = {"applied": "✅", "skipped": "⏭️", "failed": "❌"}.get(result.state, "•")
        reason = f": {untrusted.for_markdown(result.reason)}" if result.reason else ""
        name = untrusted.for_markdown(result.name)
        self.lines.append(f"- {icon} step {result.number} {name}: {result.state}{reason}")
        body = f"⏳ `{self.title}`: running…\n\n" + "\n".join(self.lines) + f"\n\n{self.marker}"
        try:
            self.client.edit_comment(self.comment_id, body)
        except TarsError as e:  # a missed progress update must not stop the execution
            print(f"tars-bot: could not update the status comment: {e}")

    def output(self, chunk: bytes) -> None:
        pass

    def check_started(self, check: str, commit: str, step: int | None) -> None:
        pass

    def check_finished(self, result: CheckResult) -> None:
        pass


def _execute(
    ctx: Context, improvement: Improvement, dry_run: bool, progress: Progress | None = None
) -> tuple[bool, str]:
    plan = ctx.system.plan(improvement)
    result = ctx.system.execute(plan, dry_run=dry_run, progress=progress)
    if result.success and not dry_run:
        return publish_execution(ctx, result.execution_id)
    body = publish.status_markdown(ctx.system, result.execution_id)
    if dry_run and result.diff is not None:
        body += "\n\n" + markdown.diff_details(result.diff)
    return result.success, body


def publish_execution(ctx: Context, execution_id: str) -> tuple[bool, str]:
    warnings: list[str] = []

    def warn(text: str) -> None:
        print(f"tars-bot: {text}")
        warnings.append(f"⚠️ {text}")

    publish.job_summary(ctx.system, execution_id, ctx.environ, warn)
    try:
        url = publish.publish(ctx.system, ctx.client, execution_id, ctx.token, warn=warn)
    except TarsError as e:
        execution = ctx.system.status(execution_id)
        pull = f" and pull request {execution.pull_request}" if execution.pull_request else ""
        head = (
            f"❌ Execution `{execution_id}` succeeded on branch `{execution.branch}`{pull}, but "
            f"publishing it failed:\n\n{untrusted.code_block(str(e))}\n\n**Next**: fix what the "
            "message says, "
            "then comment `/tars-bot execute` again."
        )
        return False, f"{head}\n\n{publish.status_markdown(ctx.system, execution_id)}"
    status = publish.status_markdown(ctx.system, execution_id)
    return True, "\n\n".join([f"✅ Executed: {url}", *warnings, status])


def _rollback(ctx: Context, execution: Execution, command: Command) -> tuple[bool, str]:
    execution = _landing_from_github(ctx, execution)
    if ctx.system.status(execution.id).state in AFTER_MERGE:
        return _revert(ctx, execution, command)
    rolled = ctx.system.rollback(execution.id, command.step, command.cascade, token=ctx.token)
    publish.follow_rollback(ctx.system, ctx.client, rolled.id, whole=command.step is None)
    return True, publish.status_markdown(ctx.system, rolled.id)


def _landing_from_github(
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
    execution = _execution_for(ctx, ctx.client.issue(issue_number))
    execution = _landing_from_github(ctx, execution, remote)
    if ctx.system.status(execution.id).state != "merged":
        return None
    plan = ctx.system.revert_plan(execution.id, command.step, ctx.client.default_branch())
    return execution, plan


def _revert(ctx: Context, execution: Execution, command: Command) -> tuple[bool, str]:
    """A merged execution's rollback: its revert pull request, from the default branch."""
    if command.cascade:
        raise TarsError("--cascade is for an unmerged branch; a merged step reverts alone")
    onto = ctx.client.default_branch()
    result = ctx.system.revert(execution.id, command.step, onto, remote="origin", token=ctx.token)
    if not result.success:
        body = publish.status_markdown(ctx.system, result.execution_id)
        return False, f"❌ The revert of execution `{execution.id}` failed its checks:\n\n{body}"
    ok, body = publish_execution(ctx, result.execution_id)
    what = f"step {command.step} of " if command.step else ""
    return ok, f"↩️ Reverting {what}execution `{execution.id}` (it is merged):\n\n{body}"


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
    from tars_bot.github import watch

    said = watch.handle(
        ctx.system, ctx.client, ctx.payload, ctx.token, lambda e: open_revert(ctx, e)
    )
    print(f"tars-bot: {said}")
    return 0


def _history_markdown(executions: list[Execution]) -> str:
    lines = ["| execution | improvement | state | steps | pull request |", "|---|---|---|---|---|"]
    for e in executions:
        applied = sum(s.state == "applied" for s in e.steps)
        pull, improvement = e.pull_request or "-", untrusted.for_markdown(e.improvement)
        lines.append(
            f"| `{e.id}` | {improvement} | {e.state} | {applied}/{len(e.steps)} | {pull} |"
        )
    return "\n".join(lines) if executions else "No executions yet."


def _on_pull_request(ctx: Context) -> int:
    pull = ctx.payload.get("pull_request") or {}
    number = int(pull.get("number") or ctx.payload.get("number") or 0)
    changed = [p for p in ctx.client.changed_files(number) if IMPROVEMENT_FILE.match(p)]
    if not changed:
        return 0
    # config and noxfile come from the base branch: planning never runs the pull request's code
    base = pull.get("base", {}).get("sha") or "HEAD"
    sections, ok = [], True
    for path in changed:
        file = ctx.system.repo.workdir / path
        if not file.is_file():
            continue  # deleted by the pull request
        try:
            plan = ctx.system.plan(ctx.system.load_improvement(file), base=base, source=path)
            after = (
                "**Next**: once this pull request is merged, run the tars-bot workflow "
                f"(workflow_dispatch) with improvement-id `{plan.improvement.id}` to execute it."
            )
            shown = untrusted.for_markdown(untrusted.path(path))
            sections.append(markdown.plan_markdown(plan, shown, after))
        except TarsError as e:
            ok = False
            shown = untrusted.code_span(untrusted.path(path))
            sections.append(f"❌ {shown} cannot be planned:\n\n{untrusted.code_block(str(e))}")
    body = "\n\n---\n\n".join(sections) + f"\n\n{markdown.PLAN_MARKER}"
    existing = ctx.client.find_comment(number, markdown.PLAN_MARKER)
    if existing is None:
        ctx.client.comment(number, body)
    else:
        ctx.client.edit_comment(existing, body)
    return 0 if ok else 1
