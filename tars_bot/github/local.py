"""Running comment commands on the webhook app's own host (`tars-bot serve --local-workers N`),
in clones tars-bot keeps per repository, instead of dispatching them to GitHub Actions.

An `execute` is split by privilege as the shipped workflow splits it (stages.py): the improvement
runs in a child process, in a throwaway clone, holding at most a read-only installation token;
this process, which holds the App's key, believes the child's bundle only once `publish_stage`
has checked it against the plan, then pushes. Other commands run here, as the publish job runs
them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tars_bot.execution.sandbox import ENV_ALLOWLIST
from tars_bot.git import sync_clone
from tars_bot.github import gate_verbs, stages
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
ABANDON_WAIT_S = 2.0  # for execute processes ended by a stop to record their rollback
RUNS = ".runs"  # under the cache of clones; no GitHub owner's name starts with a dot
log = logging.getLogger(__name__)


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tars-bot" / "repos"


class Children:
    """The execute processes running now, by the clone each works in, so that stopping the app
    can end them: each then rolls its execution back and journals it, as on any SIGTERM."""

    def __init__(self) -> None:
        self._running: dict[subprocess.Popen[bytes], Path] = {}
        self._lock = threading.Lock()

    def run(self, args: list[str], work: Path, env: dict[str, str], timeout: float) -> None:
        with subprocess.Popen(args, cwd=work, env=env, stdin=subprocess.DEVNULL) as child:
            with self._lock:
                self._running[child] = work
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait()
            finally:
                with self._lock:
                    del self._running[child]

    def abandon(self, wait_s: float) -> list[Path]:
        """End every child, giving them `wait_s` in all to record it; the clones they worked
        in, which keep their journals."""
        with self._lock:
            running = dict(self._running)
        for child in running:
            child.terminate()
        deadline = time.monotonic() + wait_s
        for child in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
        return list(running.values())


class Runner:
    """What a local worker calls for an authorized comment and its dispatch inputs: sync the
    repository's clone to its default branch, then handle the command as the workflow would.
    `abandon` ends the execute processes still running."""

    def __init__(
        self, run: Callable[[CommentEvent, Mapping[str, str]], None], children: Children
    ) -> None:
        self._run, self._children = run, children

    def __call__(self, event: CommentEvent, inputs: Mapping[str, str]) -> None:
        self._run(event, inputs)

    def abandon(self) -> None:
        for work in self._children.abandon(ABANDON_WAIT_S):
            log.warning(
                "stopping: ended the execute running in %s; its journal there records it "
                "(`tars-bot recover --repo %s` finishes what is left)",
                work,
                work,
            )


@contextlib.contextmanager
def _scratch(cache: Path, event: CommentEvent) -> Iterator[Path]:
    """A directory for one execute, removed when it ends; beside the clones rather than in
    /tmp, so that one abandoned by a stop keeps its journal where `recover` can find it."""
    runs = cache / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    name = f"{event.repository.replace('/', '-')}-{event.comment_id}-"
    path = Path(tempfile.mkdtemp(prefix=name, dir=runs))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
            # an execute, or a decision on a gate (it runs the next steps): split by privilege
            splits = ("execute", *gate_verbs.VERBS)
            if request.command is None or request.command.verb not in splits:
                ctx = Context(env, client, system, {})
                handle_comment(ctx, event, acknowledged=True)  # the app put the 👀
                return
            working_on_it(client, event, request.line)
            payload = {"inputs": dict(inputs), "sender": {"login": event.user_login}}
            with _scratch(cache, event) as scratch:
                handoff = scratch / "handoff"
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
