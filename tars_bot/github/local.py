"""Running comment commands on the webhook app's own host (`tars-bot serve --local-workers N`),
in clones tars-bot keeps per repository, instead of dispatching them to GitHub Actions.

An `execute` is split by privilege as the shipped workflow splits it (stages.py): the improvement
runs in a child process, in a throwaway clone, holding at most a read-only installation token;
this process, which holds the App's key, believes the child's bundle only once `publish_stage`
has checked it against the plan, then pushes. Other commands run here, as the publish job runs
them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tars_bot.execution.sandbox import ENV_ALLOWLIST
from tars_bot.git import sync_clone
from tars_bot.github import stages
from tars_bot.github.app import environment_clients
from tars_bot.github.client import DEFAULT_API_URL, GitHubClient
from tars_bot.github.commands import CommentEvent
from tars_bot.github.requests import Context, comment_request, working_on_it
from tars_bot.github.verbs import handle_comment
from tars_bot.system import ExecutionSystem

# what the execute child inherits: what sandboxed processes get, and what tars-bot itself needs
# to run (home, caches, git identity, the sandbox's binary, where GitHub is); no credentials
CHILD_ENV = (
    *ENV_ALLOWLIST, "HOME", "TMPDIR", "XDG_*", "PIP_*", "UV_*", "TARS_BOT_BWRAP",
    "GIT_CONFIG_NOSYSTEM", "GIT_AUTHOR_*", "GIT_COMMITTER_*", "GITHUB_API_URL", "GITHUB_SERVER_URL",
)  # fmt: skip
EXECUTE_TIMEOUT_S = 6 * 3600  # GitHub's own limit on a job


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tars-bot" / "repos"


class Children:
    """The execute processes running now, so that stopping the app can end them: each then
    rolls its execution back and records that in its journal, as on any SIGTERM."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
        with subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL) as child:
            with self._lock:
                self._running.add(child)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait()
            finally:
                with self._lock:
                    self._running.discard(child)

    def terminate(self) -> None:
        with self._lock:
            for child in self._running:
                child.terminate()


class Runner:
    """What a local worker calls for an authorized comment and its dispatch inputs: sync the
    repository's clone to its default branch, then handle the command as the workflow would.
    `abandon` ends the execute processes still running."""

    def __init__(self, run: Callable[[CommentEvent, Mapping[str, str]], None], children: Children):
        self._run, self._children = run, children

    def __call__(self, event: CommentEvent, inputs: Mapping[str, str]) -> None:
        self._run(event, inputs)

    def abandon(self) -> None:
        self._children.terminate()


def runner(environ: Mapping[str, str], cache: Path) -> Runner:
    """The local worker's runner for the App `environ` configures, with clones under `cache`."""
    api_url = (environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    client_for = environment_clients(environ, api_url)
    children = Children()

    def run(event: CommentEvent, inputs: Mapping[str, str]) -> None:
        with client_for(event.repository, event.installation_id) as client:
            token = client.token
            checkout = sync_clone(
                client.clone_url(), cache / event.repository, client.default_branch(), token
            )
            env = {
                **environ,
                "GITHUB_API_URL": api_url,
                "GITHUB_REPOSITORY": event.repository,
                "GITHUB_TOKEN": token or "",
            }
            system = ExecutionSystem(checkout.workdir)
            request = comment_request(event)
            if request.command is None or request.command.verb != "execute":
                ctx = Context(env, client, system, {})
                handle_comment(ctx, event, acknowledged=True)  # the app put the 👀
                return
            working_on_it(client, event, request.line)
            payload = {"inputs": dict(inputs), "sender": {"login": event.user_login}}
            with tempfile.TemporaryDirectory(prefix="tars-bot-run-") as scratch:
                handoff = Path(scratch) / "handoff"
                _execute_without_write_token(
                    client, env, payload, checkout.workdir, handoff, children
                )
                env["TARS_BOT_HANDOFF"] = str(handoff)
                stages.publish_stage(Context(env, client, system, payload))

    return Runner(run, children)


def _execute_without_write_token(
    client: GitHubClient,
    env: Mapping[str, str],
    payload: dict[str, Any],
    checkout: Path,
    handoff: Path,
    children: Children,
) -> None:
    """The workflow's execute job: `tars-bot action` at the execute stage, in a clone of its
    own, with a read-only token (an App's) or none (a personal token cannot be narrowed: the
    child then reads as anyone may, which serves public repositories)."""
    work = handoff.parent / "repo"
    sync_clone(str(checkout), work, client.default_branch(), None)
    event_path = handoff.parent / "event.json"
    event_path.write_text(json.dumps(payload), encoding="utf-8")
    child = {k: v for k, v in env.items() if any(fnmatch.fnmatchcase(k, p) for p in CHILD_ENV)}
    child |= {
        "GITHUB_REPOSITORY": client.repository,
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_EVENT_PATH": str(event_path),
        "TARS_BOT_STAGE": "execute",
        "TARS_BOT_HANDOFF": str(handoff),
    }
    if token := client.read_only_token():
        child["GITHUB_TOKEN"] = token
    # tars-bot itself, not what the improvement controls (the child runs that in the sandbox);
    # its outcome travels in the hand-off, which publish_stage reports (a missing one too)
    children.run([sys.executable, "-m", "tars_bot", "action"], work, child, EXECUTE_TIMEOUT_S)
