"""Running comment commands on the webhook app's own host (`tars-bot serve --local-workers N`),
in clones tars-bot keeps per repository, instead of dispatching them to GitHub Actions."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from tars_bot.git import sync_clone
from tars_bot.github import action
from tars_bot.github.app import environment_clients
from tars_bot.github.client import DEFAULT_API_URL
from tars_bot.github.commands import CommentEvent
from tars_bot.system import ExecutionSystem


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tars-bot" / "repos"


def runner(environ: Mapping[str, str], cache: Path) -> Callable[[CommentEvent], None]:
    """What a local worker calls for an authorized comment: sync the repository's clone to its
    default branch, then handle the command as the Action would."""
    api_url = (environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    client_for = environment_clients(environ, api_url)

    def run(event: CommentEvent) -> None:
        with client_for(event.repository, event.installation_id) as client:
            token = client.token
            checkout = sync_clone(
                client.clone_url(), cache / event.repository, client.default_branch(), token
            )
            env = {**environ, "GITHUB_REPOSITORY": event.repository, "GITHUB_TOKEN": token or ""}
            ctx = action.Context(env, client, ExecutionSystem(checkout.workdir), {})
            action.handle_comment(ctx, event, acknowledged=True)  # the app put the 👀

    return run
