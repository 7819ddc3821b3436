"""Every GitHub API call tars-bot makes, on PyGithub; plain data in and out, errors as TarsError."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jwt
import requests
from github import Auth, Github, GithubException, GithubRetry
from github.IssueComment import IssueComment
from github.PullRequestPart import PullRequestPart
from urllib3 import Retry
from urllib3.response import BaseHTTPResponse

from tars_bot.errors import TarsError
from tars_bot.version import __version__

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
BODY_LIMIT = 65_536  # characters in an issue, pull request or comment body
READ_ONLY = {"contents": "read", "issues": "read", "pull_requests": "read", "metadata": "read"}
APP_VARIABLES = ("TARS_BOT_APP_ID", "TARS_BOT_APP_PRIVATE_KEY", "TARS_BOT_INSTALLATION_ID")
STANDARD_ROLES = frozenset({"admin", "maintain", "write", "triage", "read"})
# PATCH only sets fields, so it can be repeated; POST cannot (see _Retry.is_retry)
RETRIED_METHODS = Retry.DEFAULT_ALLOWED_METHODS | {"PATCH"}
# PyGithub's own defaults; GitHub asks integrations to pace writes to avoid secondary rate limits.
SECONDS_BETWEEN_REQUESTS = 0.25
SECONDS_BETWEEN_WRITES = 1.0
PER_PAGE = 100  # GitHub's largest page: a busy thread's comments in a request or two
CHECKS_HINT = "check runs need a GitHub App's token with the checks: write permission"

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Issue:
    """An issue or pull request; the head and base fields are set for pull requests only."""

    number: int
    title: str
    body: str
    state: str
    labels: tuple[str, ...]
    is_pull_request: bool
    head_sha: str | None = None
    head_ref: str | None = None
    head_repo_full_name: str | None = None  # None also when the head fork was deleted
    base_repo_full_name: str | None = None
    author: str = ""  # who opened it: a marker in its body counts only if that is tars-bot
    merged: bool = False
    merge_commit_sha: str | None = None  # a merged pull request's merge, squash or last commit

    @property
    def from_fork(self) -> bool:
        return self.is_pull_request and self.head_repo_full_name != self.base_repo_full_name


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


def fit_body(text: str, limit: int = BODY_LIMIT) -> str:
    """`text` cut to `limit` characters, keeping the end (where logs and results are) and saying
    how much was cut."""
    if len(text) <= limit:
        return text
    overflow = len(text) - limit
    cut = overflow
    # cutting more can lengthen the number in the marker: cut again until the marker fits
    while len(_cut_marker(cut)) + len(text) - cut > limit:
        cut = overflow + len(_cut_marker(cut))
    if cut >= len(text):
        raise ValueError(f"limit {limit} leaves no room for the text")
    return _cut_marker(cut) + text[cut:]


def _cut_marker(cut: int) -> str:
    return f"*[{cut:,} characters cut from the start to fit GitHub's limit]*\n\n"


@contextlib.contextmanager
def _api(action: str, hints: Mapping[int, str] | None = None) -> Iterator[None]:
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


def _repository(environ: Mapping[str, str]) -> str:
    name = environ.get("GITHUB_REPOSITORY", "")
    owner, _, repo = name.partition("/")
    if not owner or not repo or "/" in repo:
        raise TarsError(f"GITHUB_REPOSITORY must be owner/name, found {name!r}")
    return name


def _auth(environ: Mapping[str, str], app: _Installation | None) -> Auth.Auth | None:
    """The GitHub App's installation if it is configured, else GITHUB_TOKEN, else anonymous."""
    if app is not None:
        return app.auth()
    token = environ.get("GITHUB_TOKEN")
    return Auth.Token(token) if token else None


def _is_installation(auth: Auth.Auth | None) -> bool:
    # installation tokens, GITHUB_TOKEN included, start with ghs_ (GitHub's token prefixes)
    if isinstance(auth, Auth.Token):
        return auth.token.startswith("ghs_")
    return isinstance(auth, Auth.AppInstallationAuth)


@dataclass(frozen=True)
class _Installation:
    app: Auth.AppAuth
    id: int

    def auth(self, permissions: dict[str, str] | None = None) -> Auth.AppInstallationAuth:
        return self.app.get_installation_auth(self.id, token_permissions=permissions)


def _app(environ: Mapping[str, str]) -> _Installation | None:
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
    return _Installation(app, int(installation))


class GitHubClient:
    """One repository on GitHub, through PyGithub. Close it (or use `with`) when done."""

    def __init__(
        self,
        github: Github,
        repository: str,
        *,
        installation: bool = False,
        app: _Installation | None = None,
    ) -> None:
        """`installation`: the token is a GitHub App installation's (Actions' GITHUB_TOKEN is one),
        which acts as a bot and cannot ask GitHub who it is; `app`: the App's, when known."""
        self._github = github
        self._app = app
        self.repository = repository
        self._repo = github.get_repo(repository)
        self._installation = installation
        self._author: str | None = None  # who GitHub says wrote our last comment

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, sleep: Sleep = time.sleep, pace: bool = True
    ) -> GitHubClient:
        """The client GitHub Actions' variables describe. `sleep` waits between retries; `pace`
        spaces requests out as PyGithub does by default (tests turn it off)."""
        app = _app(environ)
        auth = _auth(environ, app)
        github = Github(
            base_url=(environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            auth=auth,
            user_agent=f"tars-bot/{__version__}",
            retry=retry_policy(sleep),
            seconds_between_requests=SECONDS_BETWEEN_REQUESTS if pace else None,
            seconds_between_writes=SECONDS_BETWEEN_WRITES if pace else None,
            per_page=PER_PAGE,
            # objects are fetched only when read, so a write costs one request
            lazy=True,
        )
        repository = _repository(environ)
        return cls(github, repository, installation=_is_installation(auth), app=app)

    def close(self) -> None:
        self._github.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def token(self) -> str | None:
        """The token requests carry (for an App, a fresh installation token), for git pushes."""
        auth = self._github.requester.auth
        return getattr(auth, "token", None) if auth is not None else None

    def read_only_token(self) -> str | None:
        """A new installation token that can read the repository, its issues and pull requests
        and write nothing, for work that runs what an improvement controls; None when the client
        is not a GitHub App's (a personal or Actions token cannot be narrowed)."""
        if self._app is None:
            return None
        with _api("get a read-only installation token"):
            return self._app.auth(READ_ONLY).withRequester(self._github.requester).token

    def clone_url(self) -> str:
        with _api(f"read {self.repository}"):
            return self._repo.clone_url

    def default_branch(self) -> str:
        with _api(f"read {self.repository}"):
            return self._repo.default_branch

    def permission(self, user: str) -> str:
        """`user`'s role: admin, maintain, write, triage, read or none.

        The legacy `permission` field folds maintain into write and triage into read; `role_name`
        keeps them, but a custom role's name says nothing, so that case falls back to its base."""
        url = f"{self._repo.url}/collaborators/{quote(user, safe='')}/permission"
        with _api(f"read {user}'s permission on {self.repository}"):
            _, data = self._github.requester.requestJsonAndCheck("GET", url)
        role = data.get("role_name")
        return role if role in STANDARD_ROLES else data["permission"]

    def add_reaction(self, comment_id: int, content: str) -> None:
        with _api(f"react to comment {comment_id}"):
            self._comment(comment_id).create_reaction(content)

    def react(self, comment_id: int, content: str) -> bool:
        """`add_reaction` as decoration: a failure is logged, never raised."""
        try:
            self.add_reaction(comment_id, content)
        except TarsError as e:
            log.warning("%s", e)
            return False
        return True

    def comment(self, number: int, body: str) -> int:
        with _api(f"comment on #{number}"):
            created = self._repo.get_issue(number).create_comment(fit_body(body))
        self._author = created.user.login
        return created.id

    def edit_comment(self, comment_id: int, body: str) -> None:
        with _api(f"edit comment {comment_id}"):
            self._comment(comment_id).edit(fit_body(body))

    def find_comment(self, number: int, marker: str) -> int | None:
        """The newest comment of ours on #`number` that contains `marker`, to edit in place."""
        with _api(f"read the comments of #{number}"):
            newest_first = self._repo.get_issue(number).get_comments().reversed
            return next(
                (
                    c.id
                    for c in newest_first
                    if marker in (c.body or "") and self.is_ours(c.user.login)
                ),
                None,
            )

    def issue(self, number: int) -> Issue:
        with _api(f"read #{number}"):
            issue = self._repo.get_issue(number)
            record = Issue(
                number=issue.number,
                title=issue.title,
                body=issue.body or "",
                state=issue.state,
                labels=tuple(label.name for label in issue.labels),
                is_pull_request=issue.pull_request is not None,
                author=issue.user.login,
            )
            if not record.is_pull_request:
                return record
            pull = self._repo.get_pull(number)
            return _with_head(record, pull.head, pull.base, pull.merged, pull.merge_commit_sha)

    def open_or_update_pull_request(
        self, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """The open pull request for branch `head`, created or brought up to date."""
        owner = self.repository.partition("/")[0]
        with _api(f"open a pull request for {head}"):
            pull = next(iter(self._repo.get_pulls(state="open", head=f"{owner}:{head}")), None)
            body = fit_body(body)
            if pull is None:
                pull = self._repo.create_pull(base=base, head=head, title=title, body=body)
                self._author = pull.user.login
            else:
                changes = {"base": base} if pull.base.ref != base else {}
                pull.edit(title=title, body=body, **changes)
            labels = tuple(label.name for label in pull.labels)
            return PullRequest(pull.number, pull.html_url, labels)

    def add_labels(self, number: int, labels: Iterable[str]) -> None:
        """Add `labels` to issue or pull request #`number`. The body is `{"labels": [...]}` as
        GitHub's REST description defines it (PyGithub's `add_to_labels` sends a bare array)."""
        url = f"{self._repo.url}/issues/{number}/labels"
        names = list(labels)
        with _api(f"label #{number} {', '.join(names)}"):
            self._github.requester.requestJsonAndCheck("POST", url, input={"labels": names})

    def changed_files(self, number: int) -> list[str]:
        """The paths a pull request changes."""
        with _api(f"list the files of #{number}"):
            return [f.filename for f in self._repo.get_pull(number).get_files()]

    def close_pull_request(self, number: int, comment: str | None = None) -> None:
        if comment:
            self.comment(number, comment)
        with _api(f"close #{number}"):
            self._repo.get_pull(number).edit(state="closed")

    def create_check_run(
        self,
        name: str,
        head_sha: str,
        conclusion: str,
        output: dict[str, Any],
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
    ) -> str:
        """A completed check run on commit `head_sha`; its URL. `output` as GitHub's REST
        description has it (title, summary, annotations). Only a GitHub App's token (Actions'
        GITHUB_TOKEN is one) with `checks: write` may create one."""
        times = {"started_at": started_at, "completed_at": completed_at}
        with _api(f"create check run {name!r} on {head_sha[:10]}", {403: CHECKS_HINT}):
            run = self._repo.create_check_run(
                name,
                head_sha,
                status="completed",
                conclusion=conclusion,
                output=output,
                **{key: value for key, value in times.items() if value is not None},
            )
            return run.html_url

    def workflow_conclusion(self, workflow_id: int, head_sha: str) -> str | None:
        """How the latest completed run of a workflow on `head_sha` ended (success, failure,
        ...), or None when it has none."""
        with _api(f"list the runs of workflow {workflow_id} on {head_sha[:10]}"):
            runs = self._repo.get_workflow(workflow_id).get_runs(
                head_sha=head_sha, status="completed"
            )
            latest = max(runs, key=lambda run: run.run_number, default=None)
            return latest.conclusion if latest is not None else None

    def pull_requests_of(self, commit: str) -> list[str]:
        """The URLs of the pull requests GitHub associates with `commit` (merged as it, or
        holding it)."""
        with _api(f"list the pull requests of {commit[:10]}"):
            return [pull.html_url for pull in self._repo.get_commit(commit).get_pulls()]

    def dispatch_workflow(self, workflow_file: str, ref: str, inputs: Mapping[str, str]) -> None:
        with _api(f"start workflow {workflow_file} on {ref}"):
            self._repo.get_workflow(workflow_file).create_dispatch(ref, dict(inputs), throw=True)

    @functools.cached_property
    def login(self) -> str | None:
        """Who our comments are written by; None for an installation, whose bot name GitHub
        does not tell it (GET /user answers 403)."""
        if self._installation:
            return None
        with _api("read the authenticated user"):
            try:
                return self._github.get_user().login
            except GithubException as e:
                if e.status == 403:
                    return None
                raise

    def is_ours(self, login: str) -> bool:
        """Whether `login` is tars-bot's own identity: the token's user, or the bot GitHub says
        wrote our comments. An installation that has written nothing yet trusts bots (Actions'
        and Apps' logins end with `[bot]`, which no user's can)."""
        known = self.login or self._author
        if known is not None:
            return login == known
        return login.endswith("[bot]")

    def _comment(self, comment_id: int) -> IssueComment:
        # PyGithub only reaches a comment through its issue; its URL needs no issue number
        url = f"{self._repo.url}/issues/comments/{comment_id}"
        return IssueComment(self._github.requester, url=url)


def pull_number(url: str | None) -> int | None:
    """The number in a pull request's URL (what an execution records)."""
    url = (url or "").rstrip("/")
    number = url.rpartition("/pull/")[2]
    return int(number) if "/pull/" in url and number.isdigit() else None


def _with_head(
    record: Issue,
    head: PullRequestPart,
    base: PullRequestPart,
    merged: bool | None = None,
    merge_commit_sha: str | None = None,
) -> Issue:
    return dataclasses.replace(
        record,
        head_sha=head.sha,
        head_ref=head.ref,
        head_repo_full_name=head.repo.full_name if head.repo else None,
        base_repo_full_name=base.repo.full_name,
        merged=bool(merged),
        merge_commit_sha=merge_commit_sha if merged else None,
    )
