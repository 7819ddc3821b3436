"""`tars-bot action`: the GitHub Action entrypoint, dispatching on the workflow's event.

issue_comment      `/tars-bot ...` commands on issues (the improvement is the issue's first
                   fenced yaml block) and on tars-bot's pull requests (found by their marker)
workflow_dispatch  inputs `improvement-id` and `command`, or `issue-number` and `comment-id`
                   (how the webhook app hands over a comment it authorized)
pull_request       comments the plan of improvement files the pull request adds or changes
workflow_run       a watched CI workflow finished on the default branch (watch.py)

The environment action.yml sets: GITHUB_TOKEN, TARS_BOT_ALLOWED_PERMISSIONS (who may give
commands), TARS_BOT_ALLOW_FORKS (act on pull requests from forks), TARS_BOT_STAGE (one job of
the workflow split by privilege, stages.py) and TARS_BOT_HANDOFF (what its jobs hand over).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.github import stages
from tars_bot.github.client import GitHubClient
from tars_bot.github.commands import parse_command
from tars_bot.github.requests import (
    Context,
    authorized_comment,
    dispatched,
    improvement_of,
    log,
)
from tars_bot.github.verbs import execute, handle_comment, on_workflow_run
from tars_bot.system import ExecutionSystem
from tars_bot.ui import github_text, markdown, untrusted

IMPROVEMENT_FILE = re.compile(r"^\.tars/improvements/[^/]+\.(ya?ml|toml|json)$")
ClientFactory = Callable[[Mapping[str, str]], GitHubClient]
Handler = Callable[[Context], int]


def run(
    environ: Mapping[str, str], repo: Path | str = ".", client_factory: ClientFactory | None = None
) -> int:
    """Handle the event GitHub Actions describes in `environ`; the exit code of the job."""
    event_name = environ.get("GITHUB_EVENT_NAME", "")
    handler = EVENTS.get(event_name)
    if handler is None:
        print(f"tars-bot: nothing to do for a {event_name or 'missing'} event")
        return 0
    try:
        payload = json.loads(Path(environ["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
    except (KeyError, OSError, ValueError) as e:
        raise TarsError(f"GITHUB_EVENT_PATH: cannot read the event payload: {e}") from None
    stage = environ.get("TARS_BOT_STAGE") or "all"
    if stage != "all" and event_name != "pull_request":
        handler = STAGES.get(stage)
        if handler is None:
            raise TarsError(f"TARS_BOT_STAGE: {stage!r} is not all, authorize, execute or publish")
    with (client_factory or GitHubClient.from_env)(environ) as client:
        return handler(Context(environ, client, ExecutionSystem(repo), payload))


def _on_comment(ctx: Context) -> int:
    event = authorized_comment(ctx)
    return 0 if event is None else handle_comment(ctx, event)


def _on_dispatch(ctx: Context) -> int:
    request = dispatched(ctx)
    if request is None:
        raise TarsError("workflow_dispatch needs the input improvement-id (or issue-number)")
    if request.event is not None:  # the webhook app authorized it, and put the 👀
        return handle_comment(ctx, request.event, request.head_sha, acknowledged=True)
    command = parse_command(request.line)  # by hand: a malformed command is an error
    assert command is not None
    ok, body = execute(ctx, improvement_of(ctx, request), command.dry_run)
    log(ctx, body)
    return 0 if ok else 1


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
            shown = untrusted.for_markdown(untrusted.path(path))
            after = github_text.after_merge(plan.improvement.id or "")
            sections.append(markdown.plan_markdown(plan, shown, after))
        except TarsError as e:
            ok = False
            shown = untrusted.code_span(untrusted.path(path))
            sections.append(github_text.cannot_plan(shown, str(e)))
    body = github_text.plans_comment(sections)
    existing = ctx.client.find_comment(number, github_text.PLAN_MARKER)
    if existing is None:
        ctx.client.comment(number, body)
    else:
        ctx.client.edit_comment(existing, body)
    return 0 if ok else 1


EVENTS: dict[str, Handler] = {
    "issue_comment": _on_comment,
    "workflow_dispatch": _on_dispatch,
    "pull_request": _on_pull_request,
    "workflow_run": on_workflow_run,
}
STAGES: dict[str, Handler] = {
    "authorize": stages.authorize_stage,
    "execute": stages.execute_stage,
    "publish": stages.publish_stage,
}
