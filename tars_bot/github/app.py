"""The webhook receiver behind `tars-bot serve`: checks and dedupes GitHub's deliveries, answers at
once, and hands each comment command to the repository's tars-bot workflow (or a local worker)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
import uvicorn.config
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Lifespan

from tars_bot.errors import TarsError
from tars_bot.github.client import DEFAULT_API_URL, GitHubClient, one_line
from tars_bot.github.commands import (
    DEFAULT_ALLOWED,
    CommandError,
    CommentEvent,
    authorize,
    body_digest,
    command_line,
    parse_command,
    parse_event,
    refuse,
)
from tars_bot.github.queues import RecentIds, SerialQueues
from tars_bot.ui import github_text
from tars_bot.ui.github_text import STOPPED

log = logging.getLogger(__name__)

SECRET_VARIABLE = "TARS_BOT_WEBHOOK_SECRET"
MAX_BODY = 25 * 1024 * 1024  # GitHub does not send payloads over 25 MB
DELIVERIES_REMEMBERED = 10_000
RESPONDERS = 8  # repositories whose comments are answered at once
CREDENTIALS = "TARS_BOT_APP_ID and TARS_BOT_APP_PRIVATE_KEY (a GitHub App), or GITHUB_TOKEN"
# on SIGTERM: what runs gets this long to finish, then is abandoned; with uvicorn's own wait for
# open connections and local.ABANDON_WAIT_S, serve stops within the 10 s that init systems and
# Kubernetes allow before SIGKILL
SHUTDOWN_GRACE_S = 5.0
CONNECTIONS_GRACE_S = 2

ClientFactory = Callable[[str, int | None], GitHubClient]
RunLocal = Callable[[CommentEvent, Mapping[str, str]], None]
Run = tuple[CommentEvent, dict[str, str]]  # a command for a local worker, and its inputs
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """`client_for(repository, installation_id)` opens a client acting for that installation;
    `run_local(event, inputs)` runs a command on this host when `local_workers` > 0, with the
    inputs a dispatched workflow would get."""

    webhook_secret: bytes
    api_url: str = DEFAULT_API_URL
    client_for: ClientFactory
    workflow_file: str = "tars-bot.yml"
    allowed_permissions: frozenset[str] = DEFAULT_ALLOWED
    local_workers: int = 0
    run_local: RunLocal | None = None
    # called when stopping abandons local runs: ends their processes, which roll back
    abandon_local: Callable[[], None] | None = None
    shutdown_grace_s: float = SHUTDOWN_GRACE_S

    def __post_init__(self) -> None:
        if not self.webhook_secret:
            raise TarsError("the webhook secret is empty: anyone could send commands")
        if self.local_workers < 0:
            raise TarsError(f"local workers must be 0 or more, found {self.local_workers}")
        if self.local_workers and self.run_local is None:
            raise TarsError("local workers need a run_local function to call")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **options: Any) -> AppSettings:
        """Settings from TARS_BOT_WEBHOOK_SECRET and GITHUB_API_URL, with clients as
        `environment_clients` makes them; `options` sets the other fields."""
        secret = environ.get(SECRET_VARIABLE, "")
        if not secret:
            raise TarsError(f"{SECRET_VARIABLE} must hold the webhook secret set on GitHub")
        app = environ.get("TARS_BOT_APP_ID") and environ.get("TARS_BOT_APP_PRIVATE_KEY")
        if not app and not environ.get("GITHUB_TOKEN"):
            raise TarsError(f"no credentials to act on GitHub with: set {CREDENTIALS}")
        api_url = (environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        clients = environment_clients(environ, api_url)
        return cls(webhook_secret=secret.encode(), api_url=api_url, client_for=clients, **options)


def environment_clients(environ: Mapping[str, str], api_url: str) -> ClientFactory:
    """Clients acting as the App installation a delivery names (TARS_BOT_APP_ID and
    TARS_BOT_APP_PRIVATE_KEY in `environ`), or as GITHUB_TOKEN when no App is configured."""

    def client_for(repository: str, installation_id: int | None) -> GitHubClient:
        env = {**environ, "GITHUB_API_URL": api_url, "GITHUB_REPOSITORY": repository}
        if installation_id is not None:
            env["TARS_BOT_INSTALLATION_ID"] = str(installation_id)
        return GitHubClient.from_env(env)

    return client_for


def create_app(settings: AppSettings) -> Starlette:
    receiver = _Receiver(settings.webhook_secret)
    routes = [
        Route("/webhook", receiver.webhook, methods=["POST"]),
        Route("/", receiver.webhook, methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=_lifespan(settings))


def make_server(settings: AppSettings, host: str, port: int, **config: Any) -> uvicorn.Server:
    """The server `serve` runs; `config` adds uvicorn settings. By default tars-bot's own log
    (deliveries, authorization decisions, failures) goes where uvicorn's does, from info up."""
    app = create_app(settings)
    config.setdefault("log_config", log_config())
    config.setdefault("timeout_graceful_shutdown", CONNECTIONS_GRACE_S)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on", **config))


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with tars-bot's loggers at info on its handler, and
    urllib3's retries unsaid."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["tars_bot"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["urllib3"] = {"level": "ERROR"}  # a line per retry: the failure says it
    return config


def serve(settings: AppSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Receive webhooks until SIGINT or SIGTERM, then finish the accepted work (within
    `settings.shutdown_grace_s`, abandoning the rest) and stop."""
    log.info("answering webhooks for %s on %s:%s", settings.api_url, host, port)
    make_server(settings, host, port).run()


# -- receiving -------------------------------------------------------------------------------------
class _Receiver:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        # only the event loop's thread touches it (the endpoint is async): no lock needed
        self._deliveries = RecentIds(DELIVERIES_REMEMBERED)

    async def webhook(self, request: Request) -> JSONResponse:
        try:
            body = await _read_body(request)
        except ClientDisconnect:  # no one is left to answer
            return _error(400, "the body ended early")
        if body is None:
            return _error(413, f"the body is over GitHub's limit of {MAX_BODY:,} bytes")
        if not _signed(self._secret, body, request.headers.get("x-hub-signature-256")):
            client = request.client.host if request.client else "an unknown address"
            log.warning("refused a delivery from %s: bad signature", client)
            return _error(401, "missing or wrong X-Hub-Signature-256")
        delivery = request.headers.get("x-github-delivery")
        if delivery and not self._deliveries.add(delivery):
            return _status(200, "duplicate")
        kind = request.headers.get("x-github-event", "")
        response = _handle(kind, body, request.state.background)
        log.info("delivery %s (%s): %s", delivery, kind, bytes(response.body).decode())
        return response


async def _read_body(request: Request) -> bytes | None:
    """The body, or None as soon as it is known to be over the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def _signed(secret: bytes, body: bytes, signature: str | None) -> bool:
    expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    # as bytes: compare_digest refuses str with non-ASCII characters
    return signature is not None and hmac.compare_digest(expected, signature.encode("latin-1"))


def _handle(kind: str, body: bytes, background: _Background) -> JSONResponse:
    if kind == "ping":
        return _status(200, "pong")
    try:
        payload = json.loads(body)
    except ValueError:
        return _error(400, "the body is not JSON: set the webhook's content type to JSON")
    if not isinstance(payload, dict):
        return _error(400, f"the body is JSON but not an object: {type(payload).__name__}")
    if kind != "issue_comment":
        return _status(202, "ignored", f"tars-bot does not act on {kind or 'unnamed'} events")
    try:
        event = parse_event(payload)
    except TarsError as e:
        return _error(400, str(e))
    if command_line(event.body) is None:  # a mistyped command deserves an answer: usage
        return _status(202, "ignored", "not a /tars-bot command")
    background.accept(event)
    return _status(202, "accepted")


def _status(code: int, status: str, reason: str | None = None) -> JSONResponse:
    content = {"status": status} | ({"reason": reason} if reason else {})
    return JSONResponse(content, status_code=code)


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=code)


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


# -- working ---------------------------------------------------------------------------------------
def _lifespan(settings: AppSettings) -> Lifespan[Starlette]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, _Background]]:
        background = _Background(settings)
        try:
            yield {"background": background}
        finally:
            await run_in_threadpool(background.close)

    return lifespan


class _Background:
    """What a command leads to, done after GitHub has its answer: GitHub gives up on a delivery
    after 10 seconds, and a command takes longer."""

    def __init__(self, settings: AppSettings) -> None:
        self._settings = settings
        self._working: dict[int, str] = {}  # what workers are doing now, by thread
        self._lock = threading.Lock()
        self._runs: SerialQueues[Run] | None = None
        if settings.local_workers:
            self._runs = SerialQueues(settings.local_workers, self._run, "tars-bot-run")
        # in order per repository, so that its commands reach the workers in the order given
        self._answers = SerialQueues(RESPONDERS, self._answer, "tars-bot-answer")

    def accept(self, event: CommentEvent) -> None:
        self._answers.put(event.repository, event)

    def close(self) -> None:
        """Finish the accepted work; what still runs after the grace period is abandoned, each
        piece named in the log (its worker threads are daemons, which do not hold the exit)."""
        finishing = threading.Thread(target=self._finish, name="tars-bot-stop", daemon=True)
        finishing.start()
        finishing.join(self._settings.shutdown_grace_s)
        if not finishing.is_alive():
            return
        with self._lock:
            abandoned = sorted(self._working.values())
        for what in abandoned:
            log.warning("stopping: abandoned %s; comment the command again to retry", what)
        if self._settings.abandon_local is not None:
            self._settings.abandon_local()

    def _finish(self) -> None:
        self._answers.close()  # answering is quick: finish it, which may queue more runs
        if self._runs is not None:
            self._runs.close(cancel=lambda run: _report(self._settings, run[0], STOPPED))

    @contextlib.contextmanager
    def _doing(self, event: CommentEvent) -> Iterator[None]:
        with self._lock:
            self._working[threading.get_ident()] = _where(event)
        try:
            with _failure_reported(self._settings, event):
                yield
        finally:
            with self._lock:
                del self._working[threading.get_ident()]

    def _answer(self, event: CommentEvent) -> None:
        with self._doing(event):
            _answer(self._settings, event, self._runs)

    def _run(self, run: Run) -> None:
        assert self._settings.run_local is not None  # AppSettings checks it
        event, inputs = run
        with self._doing(event):
            self._settings.run_local(event, inputs)


def _answer(settings: AppSettings, event: CommentEvent, runs: SerialQueues[Run] | None) -> None:
    with settings.client_for(event.repository, event.installation_id) as client:
        decision = authorize(client, event, settings.allowed_permissions)
        verdict = "obeying" if decision.allowed else "not obeying"
        log.info("%s: %s: %s", _where(event), verdict, decision.reason)
        if not decision.allowed:
            if refuse(client, event, decision):
                log.info("%s: refused %s", _where(event), event.user_login)
            return
        client.react(event.comment_id, "eyes")
        inputs = dispatch_inputs(client, event)  # now: what the commenter saw
        if runs is not None:
            runs.put(event.repository, (event, inputs))
            return
        client.dispatch_workflow(settings.workflow_file, client.default_branch(), inputs)
        log.info("%s: dispatched to %s", _where(event), settings.workflow_file)


def dispatch_inputs(client: GitHubClient, event: CommentEvent) -> dict[str, str]:
    """The workflow_dispatch inputs that carry an authorized comment to the workflow (or a
    local worker), bound to what the commenter saw."""
    inputs = {
        "command": _bound_command(event),
        "issue-number": str(event.issue_number),
        "comment-id": str(event.comment_id),
    }
    if event.is_pull_request:  # the workflow refuses to execute if the head moves after this
        inputs["head-sha"] = client.issue(event.issue_number).head_sha or ""
    return inputs


def _bound_command(event: CommentEvent) -> str:
    """The command line for the workflow: an `execute` on an issue gets `--digest` of the body
    the commenter saw, so that the workflow, which starts later, refuses an edited issue."""
    line = _command_line(event)
    try:
        command = parse_command(line)
    except CommandError:
        return line  # the workflow answers with the usage
    if command is None or command.verb != "execute" or command.digest is not None:
        return line
    if event.is_pull_request or event.issue_body is None:
        return line  # a pull request is bound by head-sha
    return f"{line} --digest {body_digest(event.issue_body)}"


@contextlib.contextmanager
def _failure_reported(settings: AppSettings, event: CommentEvent) -> Iterator[None]:
    """A bot that acknowledges a command and then goes silent is the top complaint about
    comment bots: every failure gets a -1 and a comment saying why."""
    try:
        yield
    except TarsError as e:  # expected (GitHub unreachable, or refusing): one line, no traceback
        log.warning("%s failed: %s", _where(event), one_line(str(e), 300))
        _report(settings, event, str(e))
    except Exception as e:  # background work has no caller to raise to: report it instead
        log.exception("%s failed", _where(event))
        _report(settings, event, f"internal error: {type(e).__name__}: {e}")


def _report(settings: AppSettings, event: CommentEvent, reason: str) -> None:
    body = github_text.could_not_run(event.user_login, _command_line(event), one_line(reason, 300))
    try:
        with settings.client_for(event.repository, event.installation_id) as client:
            client.react(event.comment_id, "-1")
            client.comment(event.issue_number, body)
    except TarsError as e:  # GitHub is what failed: nothing is left to tell but the log
        log.warning("%s: cannot report the failure on GitHub: %s", _where(event), one_line(e, 300))
    except Exception:
        log.exception("%s: cannot report the failure on GitHub", _where(event))


def _command_line(event: CommentEvent) -> str:
    return command_line(event.body) or ""


def _where(event: CommentEvent) -> str:
    return f"comment {event.comment_id} on {event.repository}#{event.issue_number}"
