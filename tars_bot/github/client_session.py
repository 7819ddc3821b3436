"""The GitHub client's session: PyGithub's retries and pacing, the credentials (a token or a
GitHub App's installation), and GitHub's errors turned into TarsError."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from github import Auth, GithubException, GithubRetry
from urllib3 import Retry
from urllib3.response import BaseHTTPResponse

from tars_bot.errors import TarsError

DEFAULT_API_URL = "https://api.github.com"
READ_ONLY = {"contents": "read", "issues": "read", "pull_requests": "read", "metadata": "read"}
APP_VARIABLES = ("TARS_BOT_APP_ID", "TARS_BOT_APP_PRIVATE_KEY", "TARS_BOT_INSTALLATION_ID")
# PATCH only sets fields, so it can be repeated; POST cannot (see _Retry.is_retry)
RETRIED_METHODS = Retry.DEFAULT_ALLOWED_METHODS | {"PATCH"}
# PyGithub's own defaults; GitHub asks integrations to pace writes to avoid secondary rate limits.
SECONDS_BETWEEN_REQUESTS = 0.25
SECONDS_BETWEEN_WRITES = 1.0
PER_PAGE = 100  # GitHub's largest page: a busy thread's comments in a request or two

Sleep = Callable[[float], None]


class _Retry(GithubRetry):
    """GithubRetry (5xx, and secondary rate limits honouring Retry-After) with an injectable
    sleep, and without repeating a POST that GitHub may already have acted on."""

    def __init__(self, *, sleep: Sleep = time.sleep, **kwargs: Any) -> None:
        self.sleeper = sleep
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> _Retry:
        return super().new(sleep=self.sleeper, **kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method != "POST":
            return super().is_retry(method, status_code, has_retry_after)
        # A rate-limited POST was not processed, so it is safe to repeat (GithubRetry then tells
        # a rate limit from another 403). After a 5xx or a timeout it may have been: repeating it
        # could post a comment twice or start a second workflow run.
        return status_code == 403 or (status_code == 429 and has_retry_after)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        delay = self.get_retry_after(response) if response is not None else None
        delay = delay or self.get_backoff_time()
        if delay > 0:
            self.sleeper(delay)


def retry_policy(sleep: Sleep = time.sleep) -> GithubRetry:
    """Up to 5 retries with exponential backoff (0, 2, 4, 8, 16 s), or what Retry-After says."""
    return _Retry(
        sleep=sleep,
        total=5,
        backoff_factor=1.0,
        allowed_methods=RETRIED_METHODS,
        # after the last retry, hand GitHub's answer to PyGithub so the error names its status
        raise_on_status=False,
    )


@contextlib.contextmanager
def api_call(action: str, hints: Mapping[int, str] | None = None) -> Iterator[None]:
    """Turn PyGithub's and requests' errors into one line naming what failed and why; `hints`
    say, by HTTP status, what usually causes it."""
    try:
        yield
    except GithubException as e:
        hint = (hints or {}).get(e.status)
        because = f" ({hint})" if hint else ""
        raise TarsError(
            f"GitHub API: cannot {action}: {e.status} {_message(e.data)}{because}"
        ) from e
    except requests.RequestException as e:
        raise TarsError(f"GitHub API: cannot {action}: {one_line(e, 300)}") from e


def _message(data: Any) -> str:
    """GitHub's message and validation errors, on one line."""
    if isinstance(data, bytes):  # GithubRetry passes on a 403 body it could not parse
        data = data.decode(errors="replace")
    if not isinstance(data, dict):
        return one_line(data)
    errors = data.get("errors") or []
    details = [e["message"] for e in errors if isinstance(e, dict) and "message" in e]
    # PyGithub keeps a body that is not JSON (a proxy's error page) under "data"
    message = one_line(data.get("message") or data.get("data") or data)
    return f"{message} ({'; '.join(details)})" if details else message


def one_line(value: Any, width: int = 200) -> str:
    """`value` as one line of at most `width` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def repository_name(environ: Mapping[str, str]) -> str:
    name = environ.get("GITHUB_REPOSITORY", "")
    owner, _, repo = name.partition("/")
    if not owner or not repo or "/" in repo:
        raise TarsError(f"GITHUB_REPOSITORY must be owner/name, found {name!r}")
    return name


def credentials(environ: Mapping[str, str], app: Installation | None) -> Auth.Auth | None:
    """The GitHub App's installation if it is configured, else GITHUB_TOKEN, else anonymous."""
    if app is not None:
        return app.auth()
    token = environ.get("GITHUB_TOKEN")
    return Auth.Token(token) if token else None


def is_installation(auth: Auth.Auth | None) -> bool:
    # installation tokens, GITHUB_TOKEN included, start with ghs_ (GitHub's token prefixes)
    if isinstance(auth, Auth.Token):
        return auth.token.startswith("ghs_")
    return isinstance(auth, Auth.AppInstallationAuth)


@dataclass(frozen=True)
class Installation:
    app: Auth.AppAuth
    id: int

    def auth(self, permissions: dict[str, str] | None = None) -> Auth.AppInstallationAuth:
        return self.app.get_installation_auth(self.id, token_permissions=permissions)


def app_installation(environ: Mapping[str, str]) -> Installation | None:
    """The GitHub App installation TARS_BOT_APP_ID and friends configure, if they do."""
    app_id, key, installation = (environ.get(name, "") for name in APP_VARIABLES)
    if not (app_id and key and installation):
        return None
    if not installation.isdigit():
        raise TarsError(f"TARS_BOT_INSTALLATION_ID must be a number, found {installation!r}")
    if "\\n" in key and "\n" not in key:  # a PEM key pasted into a one-line secret
        key = key.replace("\\n", "\n")
    app = Auth.AppAuth(app_id, key)
    try:
        app.create_jwt()  # fail here, with a clear message, rather than at the first request
    except (ValueError, TypeError, jwt.PyJWTError) as e:
        raise TarsError(f"TARS_BOT_APP_PRIVATE_KEY is not a usable private key: {e}") from e
    return Installation(app, int(installation))
