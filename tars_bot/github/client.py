"""Every GitHub API call tars-bot makes, on PyGithub; plain data in and out, errors as TarsError.
The session and credentials are in `client_session`, the records in `client_records`, check and
workflow runs in `client_checks`."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from github import Github, GithubException
from github.GithubObject import NotSet
from github.IssueComment import IssueComment

from tars_bot.errors import TarsError
from tars_bot.github.client_checks import CHECKS_HINT, CheckRuns
from tars_bot.github.client_records import (
    BODY_LIMIT,
    Issue,
    PullRequest,
    fit_body,
    pull_number,
    with_head,
)
from tars_bot.github.client_session import (
    DEFAULT_API_URL,
    PER_PAGE,
    READ_ONLY,
    SECONDS_BETWEEN_REQUESTS,
    SECONDS_BETWEEN_WRITES,
    Installation,
    Sleep,
    api_call,
    app_installation,
    credentials,
    is_installation,
    one_line,
    repository_name,
    retry_policy,
)
from tars_bot.version import __version__

__all__ = [
    "BODY_LIMIT",
    "CHECKS_HINT",
    "DEFAULT_API_URL",
    "GitHubClient",
    "Issue",
    "PullRequest",
    "fit_body",
    "one_line",
    "pull_number",
    "retry_policy",
]

log = logging.getLogger(__name__)
STANDARD_ROLES = frozenset({"admin", "maintain", "write", "triage", "read"})


class GitHubClient(CheckRuns):
    """One repository on GitHub, through PyGithub. Close it (or use `with`) when done."""

    def __init__(
        self,
        github: Github,
        repository: str,
        *,
        installation: bool = False,
        app: Installation | None = None,
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
        app = app_installation(environ)
        auth = credentials(environ, app)
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
        repository = repository_name(environ)
        return cls(github, repository, installation=is_installation(auth), app=app)

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
        with api_call("get a read-only installation token"):
            return self._app.auth(READ_ONLY).withRequester(self._github.requester).token

    def clone_url(self) -> str:
        with api_call(f"read {self.repository}"):
            return self._repo.clone_url

    def default_branch(self) -> str:
        with api_call(f"read {self.repository}"):
            return self._repo.default_branch

    def permission(self, user: str) -> str:
        """`user`'s role: admin, maintain, write, triage, read or none.

        The legacy `permission` field folds maintain into write and triage into read; `role_name`
        keeps them, but a custom role's name says nothing, so that case falls back to its base."""
        url = f"{self._repo.url}/collaborators/{quote(user, safe='')}/permission"
        with api_call(f"read {user}'s permission on {self.repository}"):
            _, data = self._github.requester.requestJsonAndCheck("GET", url)
        role = data.get("role_name")
        found: str = role if role in STANDARD_ROLES else data["permission"]
        return found

    def add_reaction(self, comment_id: int, content: str) -> None:
        with api_call(f"react to comment {comment_id}"):
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
        with api_call(f"comment on #{number}"):
            created = self._repo.get_issue(number).create_comment(fit_body(body))
        self._author = created.user.login
        return created.id

    def comment_text(self, comment_id: int) -> str:
        with api_call(f"read comment {comment_id}"):
            return self._comment(comment_id).body or ""

    def edit_comment(self, comment_id: int, body: str) -> None:
        with api_call(f"edit comment {comment_id}"):
            self._comment(comment_id).edit(fit_body(body))

    def find_comment(self, number: int, marker: str) -> int | None:
        """The newest comment of ours on #`number` that contains `marker`, to edit in place."""
        with api_call(f"read the comments of #{number}"):
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
        with api_call(f"read #{number}"):
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
            return with_head(record, pull.head, pull.base, pull.merged, pull.merge_commit_sha)

    def open_or_update_pull_request(
        self, head: str, base: str, title: str, body: str
    ) -> PullRequest:
        """The open pull request for branch `head`, created or brought up to date."""
        owner = self.repository.partition("/")[0]
        with api_call(f"open a pull request for {head}"):
            pull = next(iter(self._repo.get_pulls(state="open", head=f"{owner}:{head}")), None)
            body = fit_body(body)
            if pull is None:
                pull = self._repo.create_pull(base=base, head=head, title=title, body=body)
                self._author = pull.user.login
            else:
                pull.edit(title=title, body=body, base=base if pull.base.ref != base else NotSet)
            labels = tuple(label.name for label in pull.labels)
            return PullRequest(pull.number, pull.html_url, labels)

    def add_labels(self, number: int, labels: Iterable[str]) -> None:
        """Add `labels` to issue or pull request #`number`. The body is `{"labels": [...]}` as
        GitHub's REST description defines it (PyGithub's `add_to_labels` sends a bare array)."""
        url = f"{self._repo.url}/issues/{number}/labels"
        names = list(labels)
        with api_call(f"label #{number} {', '.join(names)}"):
            self._github.requester.requestJsonAndCheck("POST", url, input={"labels": names})

    def changed_files(self, number: int) -> list[str]:
        """The paths a pull request changes."""
        with api_call(f"list the files of #{number}"):
            return [f.filename for f in self._repo.get_pull(number).get_files()]

    def close_pull_request(self, number: int, comment: str | None = None) -> None:
        if comment:
            self.comment(number, comment)
        with api_call(f"close #{number}"):
            self._repo.get_pull(number).edit(state="closed")

    def merge_pull_request(self, number: int, sha: str, method: str) -> str:
        """Merge #`number` by `method` (merge, squash or rebase) only if its head is still `sha`
        (GitHub answers 409 otherwise); the commit that landed on the base."""
        hint = {409: f"the head of #{number} moved from {sha[:10]}: nothing was merged"}
        with api_call(f"merge #{number} ({method})", hint):
            status = self._repo.get_pull(number).merge(merge_method=method, sha=sha)
        return status.sha

    @functools.cached_property
    def login(self) -> str | None:
        """Who our comments are written by; None for an installation, whose bot name GitHub
        does not tell it (GET /user answers 403)."""
        if self._installation:
            return None
        with api_call("read the authenticated user"):
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
