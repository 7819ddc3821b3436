"""`tars-bot serve` as a process: its credentials, expected failures as one log line each, and
a stop on SIGTERM that does not wait for GitHub."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from tars_bot.github.app import AppSettings, log_config
from tars_bot.github.client import GitHubClient
from tests import helpers
from tests.fake_github import FakeGitHub, Repo
from tests.test_github_app import SECRET, Served, comment_payload, eventually, replies, running

INSTALLATION = 48211977
PERMISSION = "/repos/octo-org/app/collaborators/wes/permission"


class Started(NamedTuple):
    hook: Served
    proc: subprocess.Popen[str]
    log: Path


@pytest.fixture
def repo(fake_github: FakeGitHub) -> Repo:
    repo = fake_github.add_repo("octo-org/app", default_branch="trunk")
    repo.add_collaborator("wes", "write")
    repo.add_pull("tars-bot: Open text files as UTF-8", head="tars-bot/utf8-io")
    return repo


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def serve_env(api_url: str, **more: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_NOSYSTEM")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return env | {"TARS_BOT_WEBHOOK_SECRET": SECRET.decode(), "GITHUB_API_URL": api_url} | more


@pytest.fixture
def start_serve(fake_github: FakeGitHub, tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """Start `tars-bot serve ARGS` as a process on loopback with `env` added to its
    environment; its output goes to tmp_path/serve.log."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> Started:
        port = free_port()
        with (tmp_path / "serve.log").open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tars_bot", "serve", "--port", str(port), *args],
                env=serve_env(fake_github.url, **env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        started.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return requests.get(url + "/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        eventually(up, timeout=30)
        return Started(Served(url, server=None), proc, tmp_path / "serve.log")  # type: ignore[arg-type]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def served(start_serve: Callable[..., Started], fake_github: FakeGitHub) -> Started:
    """`tars-bot serve`, acting with the fake's token and dispatching to Actions."""
    return start_serve({"GITHUB_TOKEN": fake_github.token})


def test_serve_without_credentials_names_the_settings(fake_github):
    """A process, with a bound: on a build where the check is missing, serve would run on."""
    result = subprocess.run(
        [sys.executable, "-m", "tars_bot", "serve", "--port", str(free_port())],
        env=serve_env(fake_github.url), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        "error: no credentials to act on GitHub with: set TARS_BOT_APP_ID and "
        "TARS_BOT_APP_PRIVATE_KEY (a GitHub App), or GITHUB_TOKEN\n"
    )


def test_sigterm_abandons_work_stuck_on_github_and_exits_143(served, repo, fake_github, tmp_path):
    """GitHub answers the permission check with 502s, which the client retries for half a
    minute; SIGTERM does not wait for that."""
    hook, proc, log_file = served
    fake_github.fail_next(PERMISSION, times=50)
    payload = comment_payload(repo, "/tars-bot status")
    assert hook.post(payload).status_code == 202
    eventually(lambda: fake_github.calls("GET", PERMISSION))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    log = log_file.read_text()
    where = f"comment {payload['comment']['id']} on octo-org/app#1"
    assert f"stopping: abandoned {where}; comment the command again to retry" in log
    assert "Traceback" not in log


def test_sigterm_when_idle_exits_143(served):
    proc = served.proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143


def test_github_unreachable_is_one_log_line(repo, fake_github, caplog):
    """No GitHub at the address (the network is down): the failure is logged in one line,
    without a traceback, and the command is reported failed where possible (here: nowhere)."""
    dead = f"http://127.0.0.1:{free_port()}"

    def client_for(repository: str, installation_id: int | None) -> GitHubClient:
        env = {"GITHUB_API_URL": dead, "GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": repository}
        return GitHubClient.from_env(env, sleep=lambda s: None, pace=False)

    settings = AppSettings(webhook_secret=SECRET, client_for=client_for, api_url=dead)
    with caplog.at_level(logging.INFO, logger="tars_bot"), running(settings) as hook:
        payload = comment_payload(repo, "/tars-bot status")
        assert hook.post(payload).status_code == 202
        eventually(lambda: "cannot report the failure" in caplog.text, timeout=60)
    ours = [r for r in caplog.records if r.name.startswith("tars_bot") and r.levelno >= 30]
    assert len(ours) == 3  # the command failed; the -1 and the reply could not be posted
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in ours)
    assert "failed: GitHub API: cannot read wes's permission" in ours[0].getMessage()


def test_serve_logs_no_retry_chatter():
    """urllib3 says each retry at warning; serve's log keeps one line per failure."""
    assert log_config()["loggers"]["urllib3"] == {"level": "ERROR"}


def test_a_4xx_from_github_is_one_log_line_and_a_reply(repo, fake_github, caplog, serve_app):
    fake_github.fail_next(PERMISSION, status=404)
    with caplog.at_level(logging.INFO, logger="tars_bot"):
        payload = comment_payload(repo, "/tars-bot status")
        assert serve_app.post(payload).status_code == 202
        [reply] = eventually(lambda: replies(repo))
    assert "404" in reply
    [failure] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert failure.exc_info is None and "404" in failure.getMessage()


@pytest.fixture
def serve_app(fake_github: FakeGitHub) -> Iterator[Served]:
    def client_for(repository: str, installation_id: int | None) -> GitHubClient:
        env = {
            "GITHUB_API_URL": fake_github.url,
            "GITHUB_TOKEN": fake_github.token,
            "GITHUB_REPOSITORY": repository,
        }
        return GitHubClient.from_env(env, pace=False)

    with running(AppSettings(webhook_secret=SECRET, client_for=client_for)) as hook:
        yield hook


LONG_STEP = """\
```yaml
steps:
  - {name: wait, run: "sleep 300", scope: ["**"]}
```
"""


def test_sigterm_ends_a_local_execute_whose_journal_records_it(
    start_serve, setup, fake_github, tmp_path
):
    """A local worker's execute runs in a process of its own: a stop ends it within the bound,
    and its journal, kept beside the clones, says what became of it."""
    _, _, repo = setup
    issue = repo.add_issue("wait", LONG_STEP)
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=INSTALLATION)
    del app["TARS_BOT_INSTALLATION_ID"]  # each delivery names it
    hook, proc, log_file = start_serve(app, "--local-workers", "1")
    payload = helpers.comment_payload(repo, issue.number, "/tars-bot execute")
    payload["installation"] = {"id": INSTALLATION}
    assert hook.post(payload).status_code == 202
    runs = Path(os.environ["XDG_CACHE_HOME"]) / "tars-bot" / "repos" / ".runs"

    def journal() -> Path | None:
        for clone in runs.glob("*/repo/.git/refs/tars-bot/executions/*"):
            return clone.parents[4]
        return None

    clone = eventually(journal, timeout=60)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    log = log_file.read_text()
    assert f"stopping: ended the execute running in {clone}" in log
    assert "Traceback" not in log
    result = subprocess.run(
        [sys.executable, "-m", "tars_bot", "history", "--repo", str(clone), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    [execution] = json.loads(result.stdout)
    assert execution["state"] != "running"  # rolled back as it ended, or left for recover
    assert execution["state"] in ("rolled_back", "interrupted", "failed"), execution["state"]
