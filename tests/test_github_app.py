"""The webhook receiver, served by uvicorn on loopback, against the fake GitHub."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import uvicorn
import uvicorn.config

from tars_bot.errors import TarsError
from tars_bot.github.app import (
    MAX_BODY,
    STOPPED,
    AppSettings,
    ClientFactory,
    log_config,
    make_server,
)
from tars_bot.github.client import GitHubClient
from tars_bot.github.commands import CommentEvent
from tars_bot.github.queues import RecentIds, SerialQueues
from tests.fake_github import Comment, Dispatch, FakeGitHub, Repo

PAYLOAD = Path(__file__).parent / "data" / "issue_comment.json"
SECRET = b"It's a Secret to Everybody"
COMMAND = "/tars-bot execute --dry-run\r\nLet's see the diff first."
INSTALLATION = 48211977  # the installation in the sample payload
BOT = "github-actions[bot]"  # whom the fake's token acts as

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """`check()` once it is truthy: the work a delivery leads to ends after the response."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out waiting for the background work"
        time.sleep(0.01)
    return result


# -- serving ---------------------------------------------------------------------------------------
@dataclass
class Served:
    url: str
    server: uvicorn.Server

    def post(
        self,
        payload: Any,
        event: str = "issue_comment",
        delivery: str | None = None,
        signature: str | None = "valid",
        path: str = "/webhook",
    ) -> requests.Response:
        """A delivery as GitHub sends it; `signature="valid"` signs it with the secret."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/7d8f2a1",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        }
        if signature is not None:
            valid = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = valid if signature == "valid" else signature
        return requests.post(self.url + path, data=body, headers=headers, timeout=10)


@contextlib.contextmanager
def running(settings: AppSettings) -> Iterator[Served]:
    # our own listening socket: the port is known, and connections wait until uvicorn serves
    with socket.create_server(("127.0.0.1", 0)) as sock:
        server = make_server(settings, "127.0.0.1", 0, log_config=None, access_log=False)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
        thread.start()
        try:
            yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", server)
        finally:
            server.should_exit = True
            thread.join()


@pytest.fixture
def repo(fake_github: FakeGitHub) -> Repo:
    repo = fake_github.add_repo("octo-org/app", default_branch="trunk")
    repo.add_collaborator("wes", "write")
    repo.add_collaborator("rod", "read")
    repo.add_pull("tars-bot: Open text files as UTF-8", head="tars-bot/utf8-io")
    return repo


@pytest.fixture
def installations() -> list[tuple[str, int | None]]:
    return []


@pytest.fixture
def clients(fake_github: FakeGitHub, installations: list[tuple[str, int | None]]) -> ClientFactory:
    """Clients of the fake that note which repository and installation they were asked for."""

    def client_for(repository: str, installation_id: int | None) -> GitHubClient:
        installations.append((repository, installation_id))
        env = {
            "GITHUB_API_URL": fake_github.url,
            "GITHUB_TOKEN": fake_github.token,
            "GITHUB_REPOSITORY": repository,
        }
        return GitHubClient.from_env(env, pace=False)

    return client_for


@pytest.fixture
def serve(fake_github: FakeGitHub, clients: ClientFactory) -> Iterator[Callable[..., Served]]:
    """Start the receiver with AppSettings changed by the keywords given."""
    with contextlib.ExitStack() as stack:

        def start(**changes: Any) -> Served:
            options = {"webhook_secret": SECRET, "api_url": fake_github.url} | changes
            return stack.enter_context(running(AppSettings(client_for=clients, **options)))

        yield start


@pytest.fixture
def hook(serve: Callable[..., Served], repo: Repo) -> Served:
    return serve()


def comment_payload(
    repo: Repo,
    body: str = COMMAND,
    login: str = "wes",
    user_type: str = "User",
    action: str = "created",
) -> dict[str, Any]:
    """The sample payload, for a new comment on pull request #1 of `repo`."""
    comment = repo.add_comment(1, body, login)
    payload = json.loads(PAYLOAD.read_text())
    payload["action"] = action
    payload["comment"] |= {"id": comment.id, "body": body}
    payload["comment"]["user"] |= {"login": login, "type": user_type}
    payload["issue"]["number"] = 1
    payload["repository"] |= {"name": repo.full_name.partition("/")[2], "full_name": repo.full_name}
    payload["sender"]["login"] = login
    return payload


def comment(repo: Repo, payload: dict[str, Any]) -> Comment:
    return repo.comments[payload["comment"]["id"]]


def reactions(repo: Repo, payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r.user, r.content) for r in comment(repo, payload).reactions]


def replies(repo: Repo) -> list[str]:
    return [c.body for c in repo.comments_on(1) if c.user == BOT]


def dispatched(repo: Repo, payload: dict[str, Any]) -> Dispatch:
    inputs = {
        "command": payload["comment"]["body"].splitlines()[0],
        "issue-number": "1",
        "comment-id": str(payload["comment"]["id"]),
        "head-sha": repo.issues[1].head_sha,  # the head the command was authorized against
    }
    return Dispatch("tars-bot.yml", repo.default_branch, inputs)


def settle(hook: Served, repo: Repo) -> None:
    """Wait until the work of every delivery sent so far is done: comments on one repository are
    answered in order, so a command sent now is dispatched last."""
    barrier = comment_payload(repo, "/tars-bot status")
    assert hook.post(barrier).status_code == 202
    eventually(lambda: dispatched(repo, barrier) in repo.dispatches)


# -- the endpoints ---------------------------------------------------------------------------------
def test_health(hook):
    response = requests.get(hook.url + "/healthz", timeout=10)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("path", ["/webhook", "/"])
def test_a_signed_ping_is_answered(hook, fake_github, path):
    response = hook.post({"zen": "Design for failure.", "hook_id": 1}, "ping", path=path)
    assert (response.status_code, response.json()) == (200, {"status": "pong"})
    assert fake_github.requests == []


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha256=" + hmac.new(b"another secret", b"{}", hashlib.sha256).hexdigest(),
        "sha1=" + "0" * 40,
        "sha256=é",
    ],
)
def test_a_missing_or_wrong_signature_is_refused_and_nothing_happens(
    hook, repo, fake_github, signature
):
    payload = comment_payload(repo)
    response = hook.post(payload, signature=signature)
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong X-Hub-Signature-256"}
    settle(hook, repo)
    assert reactions(repo, payload) == []
    assert len(fake_github.calls("GET", "/repos/octo-org/app/collaborators/wes/permission")) == 1


def test_a_signed_but_altered_body_is_refused(hook, repo):
    payload = comment_payload(repo)
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    payload["comment"]["body"] = "/tars-bot rollback"
    assert hook.post(payload, signature=signature).status_code == 401


def test_a_redelivery_does_nothing(hook, repo):
    payload = comment_payload(repo)
    delivery = str(uuid.uuid4())
    assert hook.post(payload, delivery=delivery).status_code == 202
    response = hook.post(payload, delivery=delivery)
    assert (response.status_code, response.json()) == (200, {"status": "duplicate"})
    settle(hook, repo)
    assert repo.dispatches.count(dispatched(repo, payload)) == 1


@pytest.mark.parametrize("body", ["LGTM", "please run /tars-bot plan", "", "> /tars-bot plan"])
def test_comments_that_are_not_commands_are_ignored(hook, repo, body):
    response = hook.post(comment_payload(repo, body))
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "reason": "not a /tars-bot command"}


def test_other_events_are_ignored(hook, repo):
    response = hook.post({"action": "opened", "issue": {"number": 1}}, "issues")
    assert response.status_code == 202
    assert response.json() == {
        "status": "ignored",
        "reason": "tars-bot does not act on issues events",
    }


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"payload=%7B%7D", "the body is not JSON: set the webhook's content type to JSON"),
        (b"{", "the body is not JSON: set the webhook's content type to JSON"),
        (b"\xff\xfe", "the body is not JSON: set the webhook's content type to JSON"),
        (b"[]", "the body is JSON but not an object: list"),
        (b'{"action": "created"}', "not an issue_comment event: no 'comment' in the payload"),
    ],
)
def test_a_body_that_is_not_an_issue_comment_is_a_400(hook, body, problem):
    response = hook.post(body)
    assert (response.status_code, response.json()) == (400, {"error": problem})


def test_a_body_over_25_mb_is_refused_before_it_is_read(hook):
    host, port = hook.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", "/webhook")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(MAX_BODY + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read()) == {
            "error": "the body is over GitHub's limit of 26,214,400 bytes"
        }
    finally:
        connection.close()


def test_a_streamed_body_over_25_mb_is_refused(hook):
    def chunks() -> Iterator[bytes]:
        for _ in range(26):
            yield b" " * (1024 * 1024)

    # chunked: no Content-Length tells the size in advance
    response = requests.post(hook.url + "/webhook", data=chunks(), timeout=10)
    assert response.status_code == 413


def test_a_client_that_leaves_mid_body_is_no_error(hook, caplog):
    host, port = hook.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        client.shutdown(socket.SHUT_WR)
        assert client.recv(1024) == b""  # the server closed the connection too
    assert requests.get(hook.url + "/healthz", timeout=10).status_code == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- commands --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/webhook", "/"])
def test_a_writer_s_command_gets_eyes_and_starts_the_workflow(hook, repo, installations, path):
    payload = comment_payload(repo)
    response = hook.post(payload, path=path)
    assert (response.status_code, response.json()) == (202, {"status": "accepted"})
    dispatch = eventually(lambda: repo.dispatches)
    assert dispatch == [
        Dispatch(
            "tars-bot.yml",
            "trunk",
            {
                "command": "/tars-bot execute --dry-run",
                "issue-number": "1",
                "comment-id": str(payload["comment"]["id"]),
                "head-sha": repo.issues[1].head_sha,
            },
        )
    ]
    assert reactions(repo, payload) == [(BOT, "eyes")]
    assert installations == [("octo-org/app", INSTALLATION)]
    assert replies(repo) == []


def test_a_mistyped_command_goes_to_the_workflow_which_answers_with_the_usage(hook, repo):
    payload = comment_payload(repo, "/tars-bot deploy")
    assert hook.post(payload).json() == {"status": "accepted"}
    eventually(lambda: dispatched(repo, payload) in repo.dispatches)


def test_a_reader_is_refused_politely_once_and_nothing_runs(hook, repo):
    payload = comment_payload(repo, login="rod")
    assert hook.post(payload).status_code == 202
    refusal = eventually(lambda: replies(repo))
    assert refusal[0].startswith("Sorry @rod, tars-bot only takes commands from people with write")
    again = comment_payload(repo, "/tars-bot plan", login="rod")
    assert hook.post(again).status_code == 202
    settle(hook, repo)
    assert dispatched(repo, payload) not in repo.dispatches
    assert reactions(repo, payload) == reactions(repo, again) == []
    assert len(replies(repo)) == 1  # one refusal per commenter and issue, however often asked


def test_deliveries_and_decisions_are_logged_at_info(hook, repo, caplog):
    caplog.set_level(logging.INFO, logger="tars_bot")
    writer, reader = comment_payload(repo), comment_payload(repo, login="rod")
    for payload in (writer, reader):
        assert hook.post(payload).status_code == 202
    settle(hook, repo)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any('(issue_comment): {"status":"accepted"}' in m for m in infos), infos
    where = f"comment {writer['comment']['id']} on octo-org/app#1"
    assert f"{where}: obeying: wes has write permission" in infos
    assert f"{where}: dispatched to tars-bot.yml" in infos
    assert any(
        m.startswith(f"comment {reader['comment']['id']} on octo-org/app#1: not obeying: rod")
        for m in infos
    )


def test_serve_logs_tars_bot_at_info_by_default():
    config = log_config()
    assert config["loggers"]["tars_bot"] == {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    assert "tars_bot" not in uvicorn.config.LOGGING_CONFIG["loggers"]  # a copy was changed


def test_an_execute_on_an_issue_is_bound_to_the_body_the_commenter_saw(hook, repo):
    body = "```yaml\nsteps: [{name: n, write: {path: N.md, content: x}}]\n```\n"
    issue = repo.add_issue("notes", body, user="rod")
    payload = comment_payload(repo, "/tars-bot execute --dry-run")
    payload["comment"]["id"] = repo.add_comment(issue.number, "/tars-bot execute", "wes").id
    payload["issue"] |= {"number": issue.number, "body": body}
    del payload["issue"]["pull_request"]
    assert hook.post(payload).status_code == 202
    [dispatch] = eventually(lambda: repo.dispatches)
    digest = hashlib.sha256(body.encode()).hexdigest()
    assert dispatch.inputs == {
        "command": f"/tars-bot execute --dry-run --digest {digest}",
        "issue-number": str(issue.number),
        "comment-id": str(payload["comment"]["id"]),
    }


COMMENT_BODIES = json.loads((Path(__file__).parent / "data" / "comment_bodies.json").read_text())


@pytest.mark.parametrize("case", COMMENT_BODIES, ids=lambda case: repr(case["body"]))
def test_the_app_reads_comment_bodies_as_the_action_does(hook, repo, case):
    """The same table as test_github_action's: a comment is a command for both or for neither."""
    payload = comment_payload(repo, case["body"])
    response = hook.post(payload)
    if case["line"] is None:
        assert response.json() == {"status": "ignored", "reason": "not a /tars-bot command"}
        return
    assert response.json() == {"status": "accepted"}
    [dispatch] = eventually(lambda: repo.dispatches)
    assert dispatch.inputs["command"] == case["line"]


@pytest.mark.parametrize(
    "changes",
    [
        {"login": "dependabot[bot]", "user_type": "Bot"},
        {"action": "edited"},
        {"action": "deleted"},
        {"body": "/tars-bot plan\n\n<!-- tars-bot:refusal=rod -->"},
    ],
)
def test_bots_edits_and_our_own_comments_are_left_alone(hook, repo, fake_github, changes):
    payload = comment_payload(repo, **changes)
    assert hook.post(payload).status_code == 202
    settle(hook, repo)
    assert reactions(repo, payload) == []
    assert replies(repo) == []
    assert len(repo.dispatches) == 1  # the barrier's
    assert len(fake_github.calls(method="POST")) == 2  # the barrier's eyes and dispatch


def test_a_failed_dispatch_gets_a_thumbs_down_and_says_why(hook, repo, caplog):
    repo.workflows.clear()
    payload = comment_payload(repo)
    assert hook.post(payload).status_code == 202
    failure = eventually(lambda: replies(repo))
    assert failure[0].startswith(
        "@wes tars-bot could not run `/tars-bot execute --dry-run`: GitHub API: cannot start "
        "workflow tars-bot.yml on trunk: 404 Not Found\n\n<!-- tars-bot:failure -->"
    )
    assert reactions(repo, payload) == [(BOT, "eyes"), (BOT, "-1")]
    assert f"comment {payload['comment']['id']} on octo-org/app#1 failed" in caplog.text


def test_a_failure_to_report_is_logged(hook, repo, fake_github, caplog):
    repo.workflows.clear()
    payload = comment_payload(repo)
    fake_github.fail_next("/repos/octo-org/app/issues/1/comments", status=500, method="POST")
    assert hook.post(payload).status_code == 202
    eventually(lambda: "cannot report the failure on GitHub" in caplog.text)
    assert replies(repo) == []


# -- local workers ---------------------------------------------------------------------------------
class Runs:
    """A `run_local` that records the comments it ran; a comment whose body holds "wait" waits
    for `gate`."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []
        self.gate = threading.Event()

    def __call__(self, event: CommentEvent, inputs: Mapping[str, str]) -> None:
        assert inputs["comment-id"] == str(event.comment_id)
        self.started.append(event.comment_id)
        if "wait" in event.body:
            assert self.gate.wait(10)
        if "fail" in event.body:
            raise RuntimeError("no space left on device")
        self.finished.append(event.comment_id)


def test_local_workers_run_one_repository_s_commands_in_order(serve, repo):
    runs = Runs()
    hook = serve(local_workers=1, run_local=runs)
    first = comment_payload(repo, "/tars-bot execute\nwait")
    second = comment_payload(repo, "/tars-bot status")
    assert hook.post(first).json() == {"status": "accepted"}
    eventually(lambda: runs.started)
    assert hook.post(second).json() == {"status": "accepted"}
    eventually(lambda: reactions(repo, second))
    assert runs.started == [first["comment"]["id"]]  # the second waits for the first
    runs.gate.set()
    eventually(lambda: len(runs.finished) == 2)
    assert runs.finished == [first["comment"]["id"], second["comment"]["id"]]
    assert reactions(repo, first) == reactions(repo, second) == [(BOT, "eyes")]
    assert repo.dispatches == []


def test_local_workers_serve_repositories_side_by_side(serve, repo, fake_github):
    other = fake_github.add_repo("octo-org/lib")
    other.add_collaborator("wes", "write")
    other.add_pull("Add a helper", head="tars-bot/helper")
    runs = Runs()
    hook = serve(local_workers=2, run_local=runs)
    hook.post(comment_payload(repo, "/tars-bot plan\nwait"))
    eventually(lambda: runs.started)
    hook.post(comment_payload(other, "/tars-bot plan"))
    eventually(lambda: runs.finished)  # while octo-org/app's command still runs
    runs.gate.set()


def test_a_failing_local_run_gets_a_thumbs_down_and_says_why(serve, repo, caplog):
    hook = serve(local_workers=1, run_local=Runs())
    payload = comment_payload(repo, "/tars-bot execute\nfail")
    with caplog.at_level(logging.ERROR, logger="tars_bot.github.app"):
        assert hook.post(payload).status_code == 202
        failure = eventually(lambda: replies(repo))
    assert failure[0].startswith(
        "@wes tars-bot could not run `/tars-bot execute`: internal error: RuntimeError: no space "
        "left on device\n\n"
    )
    assert reactions(repo, payload) == [(BOT, "eyes"), (BOT, "-1")]
    assert "RuntimeError: no space left on device" in caplog.text  # with the traceback


def test_stopping_finishes_the_running_command_and_reports_the_waiting_ones(
    fake_github, clients, repo
):
    runs = Runs()
    settings = AppSettings(
        webhook_secret=SECRET, client_for=clients, local_workers=1, run_local=runs
    )
    running_one = comment_payload(repo, "/tars-bot execute\nwait")
    waiting_one = comment_payload(repo, "/tars-bot status")
    with running(settings) as hook:
        hook.post(running_one)
        eventually(lambda: runs.started)
        hook.post(waiting_one)
        hook.server.should_exit = True
        eventually(lambda: replies(repo))
        runs.gate.set()
    assert runs.finished == [running_one["comment"]["id"]]
    assert replies(repo) == [
        f"@wes tars-bot could not run `/tars-bot status`: {STOPPED}\n\n<!-- tars-bot:failure -->"
    ]
    assert reactions(repo, waiting_one) == [(BOT, "eyes"), (BOT, "-1")]


# -- settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"webhook_secret": b""}, "the webhook secret is empty: anyone could send commands"),
        ({"local_workers": -1}, "local workers must be 0 or more, found -1"),
        ({"local_workers": 2}, "local workers need a run_local function to call"),
    ],
)
def test_settings_are_checked(clients, changes, problem):
    with pytest.raises(TarsError, match=f"^{problem}$"):
        AppSettings(**({"webhook_secret": SECRET, "client_for": clients} | changes))


def test_settings_from_the_environment(fake_github, repo):
    env = {
        "TARS_BOT_WEBHOOK_SECRET": "s3cret",
        "GITHUB_API_URL": fake_github.url + "/",
        "GITHUB_TOKEN": fake_github.token,
    }
    settings = AppSettings.from_env(env, local_workers=0)
    assert (settings.webhook_secret, settings.api_url) == (b"s3cret", fake_github.url)
    with settings.client_for("octo-org/app", None) as client:
        assert client.default_branch() == "trunk"


def test_settings_from_the_environment_act_as_the_installation_a_delivery_names(fake_github, repo):
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=7)
    del app["TARS_BOT_INSTALLATION_ID"]  # each delivery names its installation
    env = {
        "TARS_BOT_WEBHOOK_SECRET": SECRET.decode(),
        "GITHUB_API_URL": fake_github.url,
        **app,
    }
    payload = comment_payload(repo)
    payload["installation"]["id"] = 7
    with running(AppSettings.from_env(env)) as hook:
        assert hook.post(payload).status_code == 202
        eventually(lambda: repo.dispatches)
    assert reactions(repo, payload) == [("tars-bot[bot]", "eyes")]
    assert fake_github.calls("POST", "/app/installations/7/access_tokens")


def test_settings_from_the_environment_need_the_secret():
    with pytest.raises(TarsError, match=r"^TARS_BOT_WEBHOOK_SECRET must hold the webhook secret"):
        AppSettings.from_env({"GITHUB_TOKEN": "ghp_x"})


def test_recent_ids_remember_a_bounded_number():
    recent = RecentIds(2)
    assert [recent.add(i) for i in ("a", "b", "a", "c")] == [True, True, False, True]
    assert recent.add("b")  # forgotten: "a" was seen more recently
    assert not recent.add("c")


def test_serial_queues_cancel_what_has_not_started_when_closed():
    gate, started, ran, cancelled = threading.Event(), threading.Event(), [], []

    def run(item: str) -> None:
        started.set()
        assert gate.wait(10)
        ran.append(item)

    queues = SerialQueues(1, run, "test")
    queues.put("app", "app-1")
    assert started.wait(10)
    queues.put("app", "app-2")  # waits for app-1: same key
    queues.put("lib", "lib-1")  # waits for the only worker
    closing = threading.Thread(target=queues.close, kwargs={"cancel": cancelled.append})
    closing.start()
    eventually(lambda: len(cancelled) == 2)
    gate.set()
    closing.join()
    assert (ran, cancelled) == (["app-1"], ["app-2", "lib-1"])
    with pytest.raises(RuntimeError, match="the queues are closed"):
        queues.put("app", "app-3")


def test_serial_queues_finish_everything_when_closed_without_cancel():
    ran: list[str] = []
    queues = SerialQueues(2, ran.append, "test")
    for item in ("app-1", "lib-1", "app-2", "app-3"):
        queues.put(item.partition("-")[0], item)
    queues.close()
    assert sorted(ran) == ["app-1", "app-2", "app-3", "lib-1"]
    assert [item for item in ran if item.startswith("app")] == ["app-1", "app-2", "app-3"]
