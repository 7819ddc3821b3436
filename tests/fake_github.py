"""A GitHub REST API (v3) double: a real HTTP server on 127.0.0.1 that PyGithub talks to.

Seed repositories, issues, pull requests, comments and collaborators; read back what a client did
from the state and from `requests`; make the next answers to a path fail (5xx, or a secondary rate
limit with Retry-After) to exercise retries. Response shapes follow GitHub's documented examples,
trimmed to the fields a client reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import rest_description
from tests.rest_description import Operation

BODY_LIMIT = 65_536
# GitHub's own example of a completed run's event, from the npm package @octokit/webhooks-examples
WORKFLOW_RUN_EXAMPLE = Path(__file__).parent / "data" / "workflow_run.json"
DOCS = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from content "
    "creation. Please retry your request again later."
)
# GET .../permission answers a legacy base level in `permission` and the role in `role_name`
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()


@dataclass
class Identity:
    """Whom a token authenticates. Installation tokens (Actions' GITHUB_TOKEN, a GitHub App's)
    act as a bot and get 403 from GET /user."""

    login: str
    installation: bool = False
    read_only: bool = False  # an installation token asked for with read permissions only


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]  # names in lower case


@dataclass
class Reaction:
    id: int
    user: str
    content: str
    created_at: str = field(default_factory=_now)


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    user: str
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Issue:
    """An issue, or a pull request when `head_ref` is set: GitHub numbers both in one sequence."""

    id: int
    number: int
    title: str
    body: str | None
    user: str
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    closed_at: str | None = None
    head_ref: str | None = None
    head_sha: str | None = None
    head_repo: str | None = None  # full name of the head's repository; a fork's differs
    base_ref: str | None = None
    files: list[str] = field(default_factory=list)  # what a pull request changes
    merged_at: str | None = None
    merge_commit_sha: str | None = None  # the merge, squash or last rebased commit

    @property
    def is_pull(self) -> bool:
        return self.head_ref is not None


@dataclass
class Dispatch:
    workflow: str
    ref: str
    inputs: dict[str, Any]


@dataclass
class App:
    id: int
    slug: str
    public_key: str
    installations: set[int]


@dataclass
class Repo:
    server: FakeGitHub = field(repr=False)
    id: int
    full_name: str
    default_branch: str = "main"
    private: bool = False
    clone_url: str | None = None
    collaborators: dict[str, tuple[str, str]] = field(default_factory=dict)  # role, permission
    branches: dict[str, str] = field(default_factory=dict)  # name -> head sha, where it matters
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # name -> id
    workflows: set[str] = field(default_factory=lambda: {"tars-bot.yml"})
    dispatches: list[Dispatch] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> as GitHub shows it
    workflow_runs: list[dict[str, Any]] = field(default_factory=list)  # as GitHub shows them
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> newest last

    @property
    def owner(self) -> str:
        return self.full_name.partition("/")[0]

    def add_collaborator(self, login: str, role: str, permission: str | None = None) -> None:
        """`role` is admin, maintain, write, triage, read, or a custom role with `permission`."""
        self.collaborators[login] = (role, permission or LEGACY_PERMISSION[role])

    def add_issue(
        self, title: str, body: str = "", user: str = "octocat", labels: Iterable[str] = ()
    ) -> Issue:
        issue = Issue(self.server.new_id(), len(self.issues) + 1, title, body, user)
        self.issues[issue.number] = issue
        self.add_labels(issue, labels)
        return issue

    def add_pull(
        self,
        title: str,
        head: str,
        base: str | None = None,
        body: str = "",
        user: str = "octocat",
        head_repo: str | None = None,
    ) -> Issue:
        pull = self.add_issue(title, body, user)
        pull.head_ref, pull.base_ref = head, base or self.default_branch
        pull.head_repo = head_repo or self.full_name
        pull.head_sha = self.branches.get(head) or _sha(pull.head_repo, head)
        return pull

    def add_comment(self, number: int, body: str, user: str = "octocat") -> Comment:
        comment = Comment(self.server.new_id(), number, body, user)
        self.comments[comment.id] = comment
        return comment

    def comments_on(self, number: int) -> list[Comment]:
        return [c for c in self.comments.values() if c.issue == number]

    def add_labels(self, issue: Issue, names: Iterable[str]) -> None:
        for name in names:
            self.labels.setdefault(name, self.server.new_id())
            if name not in issue.labels:
                issue.labels.append(name)

    def pulls(self) -> list[Issue]:
        return [i for i in self.issues.values() if i.is_pull]

    def add_workflow_run(
        self,
        head_sha: str,
        conclusion: str | None,
        workflow: str = "CI",
        path: str = ".github/workflows/ci.yml",
        branch: str | None = None,
        event: str = "push",
    ) -> dict[str, Any]:
        """A finished run of a workflow, and the `workflow_run` event GitHub sends for it
        (shaped as @octokit/webhooks-examples' completed example)."""
        workflow_id = 100 + sum(map(ord, path))  # one id per workflow file
        run_id = self.server.new_id()
        number = 1 + sum(r["workflow_id"] == workflow_id for r in self.workflow_runs)
        url = f"https://github.com/{self.full_name}/actions/runs/{run_id}"
        example = json.loads(WORKFLOW_RUN_EXAMPLE.read_text())
        run = {
            **example["workflow_run"],
            "id": run_id,
            "name": workflow,
            "path": path,
            "workflow_id": workflow_id,
            "run_number": number,
            "head_sha": head_sha,
            "head_branch": branch or self.default_branch,
            "event": event,
            "status": "completed",
            "conclusion": conclusion,
            "html_url": url,
        }
        self.workflow_runs.append(run)
        workflow_json = {**example["workflow"], "id": workflow_id, "name": workflow, "path": path}
        repository = {**example["repository"], "full_name": self.full_name}
        return {**example, "workflow_run": run, "workflow": workflow_json, "repository": repository}

    def add_status(self, sha: str, context: str, state: str) -> dict[str, Any]:
        """A commit status on `sha` (success, pending, failure or error), as a CI posts one."""
        status_id = self.server.new_id()
        status = {
            "url": f"{self.server.url}/repos/{self.full_name}/statuses/{sha}",
            "avatar_url": None,
            "id": status_id,
            "node_id": f"SC_{status_id}",
            "state": state,
            "description": None,
            "target_url": f"https://ci.example/{context}/{status_id}",
            "context": context,
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.statuses.setdefault(sha, []).append(status)
        return status

    def merge_pull(self, pull: Issue, commit: str) -> None:
        """Record `pull` as merged into its base as `commit` (the test made that commit in git:
        a merge, a squash, or the last of the rebased commits)."""
        pull.state, pull.closed_at = "closed", _now()
        pull.merged_at, pull.merge_commit_sha = pull.closed_at, commit


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.response = Response(status, {"message": message, "documentation_url": DOCS})
        if errors:
            self.response.body["errors"] = errors


@dataclass
class _Fault:
    method: str | None
    path: str
    response: Response
    times: int


class FakeGitHub:
    """The in-memory GitHub. `url` is set while `serve()` runs."""

    def __init__(self) -> None:
        self.url = ""
        self.repos: dict[str, Repo] = {}
        self.user_types: dict[str, str] = {}
        self.user_ids: dict[str, int] = {}
        self.tokens: dict[str, Identity] = {}
        self.apps: dict[int, App] = {}
        self.requests: list[Request] = []
        self.violations: list[str] = []  # requests GitHub's REST description does not allow
        self._ids = itertools.count(1001)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self.token = "ghs_actions_token"  # as Actions' GITHUB_TOKEN: an installation token
        self.add_token(self.token, "github-actions[bot]", installation=True)

    # -- seeding -------------------------------------------------------------------------------
    def new_id(self) -> int:
        return next(self._ids)

    def add_repo(
        self,
        full_name: str,
        default_branch: str = "main",
        private: bool = False,
        clone_url: str | os.PathLike[str] | None = None,
    ) -> Repo:
        """`clone_url` may be a local repository's path, for a client that clones."""
        url = os.fspath(clone_url) if clone_url is not None else None
        repo = Repo(self, self.new_id(), full_name, default_branch, private, url)
        self.repos[full_name] = repo
        return repo

    def add_user(self, login: str, type: str = "User") -> None:
        self.user_types[login] = type

    def add_token(
        self, token: str, login: str, installation: bool = False, read_only: bool = False
    ) -> None:
        self.tokens[token] = Identity(login, installation, read_only)

    def add_app_with_key(self, app_id: int, slug: str, installation_id: int) -> dict[str, str]:
        """A GitHub App and the variables (TARS_BOT_APP_ID, ...) that configure tars-bot as it."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.add_app(app_id, slug, public.decode(), installation_id)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "TARS_BOT_APP_ID": str(app_id),
            "TARS_BOT_APP_PRIVATE_KEY": private.decode(),
            "TARS_BOT_INSTALLATION_ID": str(installation_id),
        }

    def add_app(self, app_id: int, slug: str, public_key: str, installation_id: int) -> App:
        """A GitHub App that can exchange a JWT (signed with the matching private key) for an
        installation token."""
        self.add_user(f"{slug}[bot]", "Bot")
        self.apps[app_id] = App(app_id, slug, public_key, {installation_id})
        return self.apps[app_id]

    # -- failures ------------------------------------------------------------------------------
    def fail_next(
        self,
        path: str,
        times: int = 1,
        status: int = 502,
        method: str | None = None,
        page: str | None = None,
    ) -> None:
        """The next `times` requests to `path` get `status`: GitHub's JSON error, or an HTML
        `page` as a proxy in front of it would send."""
        response = Response(status, page if page is not None else {"message": "Server Error"})
        self._faults.append(_Fault(method, path, response, times))

    def rate_limit_next(
        self,
        path: str,
        times: int = 1,
        retry_after: int = 1,
        method: str | None = None,
        status: int = 403,
    ) -> None:
        """The next `times` requests to `path` hit a secondary rate limit: 403 (or 429, which
        GitHub also uses) with Retry-After."""
        body = {
            "message": SECONDARY_RATE_LIMIT,
            "documentation_url": f"{DOCS}#secondary-rate-limits",
        }
        response = Response(status, body, {"Retry-After": str(retry_after)})
        self._faults.append(_Fault(method, path, response, times))

    # -- inspection ----------------------------------------------------------------------------
    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    # -- serving -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def serve(self) -> Iterator[FakeGitHub]:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    def handle(self, method: str, target: str, raw: bytes, headers: dict[str, str]) -> Response:
        url = urlsplit(target)
        path, query = unquote(url.path), dict(parse_qsl(url.query))
        with self._lock:
            body = json.loads(raw) if raw else None
            self.requests.append(Request(method, path, query, body, headers))
            try:
                return self._fault(method, path) or self._route(method, path, query, body, headers)
            except HTTPError as e:
                return e.response

    def _fault(self, method: str, path: str) -> Response | None:
        for fault in self._faults:
            if fault.path == path and fault.method in (None, method) and fault.times > 0:
                fault.times -= 1
                return fault.response
        return None

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Response:
        for op, handler in _ROUTES:
            match = op.pattern.fullmatch(path)
            if match and op.method == method:
                identity = self._authenticate(headers.get("authorization"), method, path)
                if problems := op.violations(query, body):
                    # as GitHub answers a request its description does not allow; recorded, so
                    # that the test fails even where the client shrugs the 422 off
                    self.violations += [f"{method} {path}: {problem}" for problem in problems]
                    raise HTTPError(422, "Invalid request.\n\n" + "\n".join(problems))
                call = _Call(self, identity, match.groupdict(), path, query, body, headers)
                return handler(call)
        raise HTTPError(404, "Not Found")

    def _authenticate(self, header: str | None, method: str, path: str) -> Identity | None:
        if not header:
            return self._anonymous(method, path)
        _, _, token = header.partition(" ")
        if path.startswith("/app/"):
            return None  # app endpoints check the JWT themselves
        if token not in self.tokens:
            raise HTTPError(401, "Bad credentials")
        identity = self.tokens[token]
        if identity.read_only and method != "GET":
            raise HTTPError(403, "Resource not accessible by integration")
        return identity

    def _anonymous(self, method: str, path: str) -> Identity:
        """Anyone may read a public repository (and is limited to 60 requests an hour)."""
        parts = path.split("/")
        repo = self.repos.get("/".join(parts[2:4])) if parts[1:2] == ["repos"] else None
        public = repo is not None and not repo.private
        if method == "GET" and public and parts[4:5] != ["collaborators"]:
            return Identity("")
        raise HTTPError(401, "Requires authentication")

    # -- JSON ----------------------------------------------------------------------------------
    def user_json(self, login: str) -> dict[str, Any]:
        kind = self.user_types.get(login) or ("Bot" if login.endswith("[bot]") else "User")
        user_id = self.user_ids.setdefault(login, self.new_id())
        return {
            "login": login,
            "id": user_id,
            "node_id": f"U_{user_id}",
            "url": f"{self.url}/users/{login}",
            "html_url": f"https://github.com/{login}",
            "type": kind,
            "site_admin": False,
        }

    def repo_json(self, full_name: str) -> dict[str, Any]:
        repo = self.repos.get(full_name)
        owner, _, name = full_name.partition("/")
        return {
            "id": repo.id if repo else int(_sha(full_name)[:8], 16),
            "node_id": f"R_{full_name}",
            "name": name,
            "full_name": full_name,
            "private": repo.private if repo else False,
            "owner": self.user_json(owner),
            "html_url": f"https://github.com/{full_name}",
            "url": f"{self.url}/repos/{full_name}",
            "fork": repo is None,  # a repository we do not hold is someone's fork
            "clone_url": (repo and repo.clone_url) or f"https://github.com/{full_name}.git",
            "default_branch": repo.default_branch if repo else "main",
            "visibility": "private" if repo and repo.private else "public",
            "archived": False,
            "disabled": False,
        }

    def issue_json(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        url = f"{self.url}/repos/{repo.full_name}/issues/{issue.number}"
        html = f"https://github.com/{repo.full_name}/{'pull' if issue.is_pull else 'issues'}"
        data = {
            "id": issue.id,
            "node_id": f"I_{issue.id}",
            "url": url,
            "repository_url": f"{self.url}/repos/{repo.full_name}",
            "comments_url": f"{url}/comments",
            "html_url": f"{html}/{issue.number}",
            "number": issue.number,
            "title": issue.title,
            "user": self.user_json(issue.user),
            "labels": [self.label_json(repo, name) for name in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignees": [],
            "comments": len(repo.comments_on(issue.number)),
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "author_association": _association(repo, issue.user),
            "body": issue.body,
            "reactions": self.reactions_json(url, issue.reactions),
        }
        if issue.is_pull:
            pull = f"{self.url}/repos/{repo.full_name}/pulls/{issue.number}"
            data["pull_request"] = {"url": pull, "html_url": data["html_url"], "merged_at": None}
        return data

    def pull_json(self, repo: Repo, pull: Issue) -> dict[str, Any]:
        issue = self.issue_json(repo, pull)
        assert pull.head_repo and pull.head_ref and pull.head_sha and pull.base_ref
        base_sha = repo.branches.get(pull.base_ref) or _sha(repo.full_name, pull.base_ref)
        return {
            **{k: issue[k] for k in ("id", "node_id", "number", "state", "locked", "title")},
            **{k: issue[k] for k in ("user", "body", "labels", "created_at", "updated_at")},
            "url": f"{self.url}/repos/{repo.full_name}/pulls/{pull.number}",
            "html_url": issue["html_url"],
            "issue_url": issue["url"],
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "draft": False,
            "merged": pull.merged_at is not None,
            "head": self._part(pull.head_repo, pull.head_ref, pull.head_sha),
            "base": self._part(repo.full_name, pull.base_ref, base_sha),
            "author_association": issue["author_association"],
        }

    def _part(self, full_name: str, ref: str, sha: str) -> dict[str, Any]:
        owner = full_name.partition("/")[0]
        return {
            "label": f"{owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user_json(owner),
            "repo": self.repo_json(full_name),
        }

    def comment_json(self, repo: Repo, comment: Comment) -> dict[str, Any]:
        url = f"{self.url}/repos/{repo.full_name}/issues/comments/{comment.id}"
        issue = repo.issues[comment.issue]
        kind = "pull" if issue.is_pull else "issues"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": url,
            "html_url": f"https://github.com/{repo.full_name}/{kind}/{issue.number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{self.url}/repos/{repo.full_name}/issues/{issue.number}",
            "body": comment.body,
            "user": self.user_json(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": _association(repo, comment.user),
            "performed_via_github_app": None,
            "reactions": self.reactions_json(url, comment.reactions),
        }

    def reactions_json(self, url: str, reactions: list[Reaction]) -> dict[str, Any]:
        counts = {content: sum(r.content == content for r in reactions) for content in REACTIONS}
        return {"url": f"{url}/reactions", "total_count": len(reactions), **counts}

    def reaction_json(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": f"REA_{reaction.id}",
            "user": self.user_json(reaction.user),
            "content": reaction.content,
            "created_at": reaction.created_at,
        }

    def label_json(self, repo: Repo, name: str) -> dict[str, Any]:
        return {
            "id": repo.labels[name],
            "node_id": f"LA_{repo.labels[name]}",
            "url": f"{self.url}/repos/{repo.full_name}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }


def _association(repo: Repo, login: str) -> str:
    if login == repo.owner:
        return "OWNER"
    return "COLLABORATOR" if login in repo.collaborators else "NONE"


# -- the API ---------------------------------------------------------------------------------------
@dataclass
class _Call:
    gh: FakeGitHub
    identity: Identity | None
    params: dict[str, str]
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]

    @property
    def repo(self) -> Repo:
        name = f"{self.params['owner']}/{self.params['repo']}"
        if name not in self.gh.repos:
            raise HTTPError(404, "Not Found")
        return self.gh.repos[name]

    @property
    def login(self) -> str:
        assert self.identity is not None
        return self.identity.login

    @property
    def installation(self) -> bool:
        return self.identity is not None and self.identity.installation

    def issue(self, pulls_only: bool = False) -> Issue:
        number = self.params.get("issue_number") or self.params["pull_number"]
        issue = self.repo.issues.get(int(number))
        if issue is None or (pulls_only and not issue.is_pull):
            raise HTTPError(404, "Not Found")
        return issue

    def comment(self) -> Comment:
        comment = self.repo.comments.get(int(self.params["comment_id"]))
        if comment is None:
            raise HTTPError(404, "Not Found")
        return comment

    def field(self, name: str, resource: str, default: Any = None) -> Any:
        value = (self.body or {}).get(name, default)
        if name == "body" and value and len(value) > BODY_LIMIT:
            message = f"body is too long (maximum is {BODY_LIMIT} characters)"
            error = {"resource": resource, "code": "custom", "field": "body", "message": message}
            raise HTTPError(422, "Validation Failed", [error])
        return value

    def page(self, items: list[Any]) -> Response:
        """One page of `items`, with the Link header GitHub sends (and PyGithub follows)."""
        per_page = min(int(self.query.get("per_page", 30)), 100)
        number = int(self.query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        links = {"next": number + 1, "last": last} if number < last else {}
        if number > 1:
            links |= {"prev": number - 1, "first": 1}
        link = ", ".join(
            f'<{self.gh.url}{self.path}?{urlencode({**self.query, "page": n})}>; rel="{rel}"'
            for rel, n in links.items()
        )
        chunk = items[(number - 1) * per_page : number * per_page]
        return Response(200, chunk, {"Link": link} if link else {})


Handler = Callable[[_Call], Response]
_ROUTES: list[tuple[Operation, Handler]] = []


def _route(key: str) -> Callable[[Handler], Handler]:
    """Serve `key` ("METHOD /path/{param}"), an operation of GitHub's REST description."""
    op = rest_description.operation(key)

    def register(handler: Handler) -> Handler:
        _ROUTES.append((op, handler))
        return handler

    return register


@_route("GET /user")
def _get_user(call: _Call) -> Response:
    if call.installation:
        raise HTTPError(403, "Resource not accessible by integration")
    return Response(200, call.gh.user_json(call.login))


@_route("GET /repos/{owner}/{repo}")
def _get_repo(call: _Call) -> Response:
    return Response(200, call.gh.repo_json(call.repo.full_name))


@_route("GET /repos/{owner}/{repo}/collaborators/{username}/permission")
def _get_permission(call: _Call) -> Response:
    repo, login = call.repo, call.params["username"]
    caller = repo.collaborators.get(call.login, ("none", "none"))[1]
    if not call.installation and caller not in ("admin", "write"):
        raise HTTPError(403, "Must have push access to view collaborator permission.")
    # on a public repository everyone can read; on a private one outsiders have no access
    outsider = ("none", "none") if repo.private else ("read", "read")
    role, permission = repo.collaborators.get(login, outsider)
    rank = ("none", "read", "triage", "write", "maintain", "admin")
    level = rank.index(role) if role in rank else rank.index(permission)
    flags = {"pull": 1, "triage": 2, "push": 3, "maintain": 4, "admin": 5}
    user = call.gh.user_json(login)
    user["permissions"] = {flag: level >= need for flag, need in flags.items()}
    user["role_name"] = role
    return Response(200, {"permission": permission, "role_name": role, "user": user})


@_route("GET /repos/{owner}/{repo}/issues")
def _list_issues(call: _Call) -> Response:
    state = call.query.get("state", "open")
    issues = [i for i in call.repo.issues.values() if state in ("all", i.state)]
    return call.page([call.gh.issue_json(call.repo, i) for i in issues])


@_route("POST /repos/{owner}/{repo}/issues")
def _create_issue(call: _Call) -> Response:
    title = call.field("title", "Issue")
    if not title:
        raise HTTPError(422, "Validation Failed", [{"resource": "Issue", "code": "missing_field"}])
    issue = call.repo.add_issue(title, call.field("body", "Issue", ""), call.login)
    call.repo.add_labels(issue, call.field("labels", "Issue", []))
    return Response(201, call.gh.issue_json(call.repo, issue))


@_route("GET /repos/{owner}/{repo}/issues/{issue_number}")
def _get_issue(call: _Call) -> Response:
    return Response(200, call.gh.issue_json(call.repo, call.issue()))


@_route("PATCH /repos/{owner}/{repo}/issues/{issue_number}")
def _edit_issue(call: _Call) -> Response:
    issue = call.issue()
    _update(issue, call, "Issue")
    if (labels := call.field("labels", "Issue")) is not None:
        issue.labels = []
        call.repo.add_labels(issue, labels)
    return Response(200, call.gh.issue_json(call.repo, issue))


def _update(issue: Issue, call: _Call, resource: str) -> None:
    issue.title = call.field("title", resource, issue.title)
    issue.body = call.field("body", resource, issue.body)
    state = call.field("state", resource, issue.state)
    if state not in ("open", "closed"):
        raise HTTPError(422, "Validation Failed", [{"resource": resource, "code": "invalid"}])
    if state != issue.state:
        issue.state, issue.closed_at = state, _now() if state == "closed" else None
    issue.updated_at = _now()


@_route("GET /repos/{owner}/{repo}/issues/{issue_number}/comments")
def _list_comments(call: _Call) -> Response:
    number = call.issue().number
    return call.page([call.gh.comment_json(call.repo, c) for c in call.repo.comments_on(number)])


@_route("POST /repos/{owner}/{repo}/issues/{issue_number}/comments")
def _create_comment(call: _Call) -> Response:
    body = call.field("body", "IssueComment")
    if not body:
        raise HTTPError(422, "Validation Failed", [{"resource": "IssueComment", "code": "missing"}])
    comment = call.repo.add_comment(call.issue().number, body, call.login)
    return Response(201, call.gh.comment_json(call.repo, comment))


@_route("GET /repos/{owner}/{repo}/issues/comments/{comment_id}")
def _get_comment(call: _Call) -> Response:
    return Response(200, call.gh.comment_json(call.repo, call.comment()))


@_route("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}")
def _edit_comment(call: _Call) -> Response:
    comment = call.comment()
    comment.body = call.field("body", "IssueComment", comment.body)
    comment.updated_at = _now()
    return Response(200, call.gh.comment_json(call.repo, comment))


@_route("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
def _react_to_comment(call: _Call) -> Response:
    return _react(call, call.comment().reactions)


@_route("POST /repos/{owner}/{repo}/issues/{issue_number}/reactions")
def _react_to_issue(call: _Call) -> Response:
    return _react(call, call.issue().reactions)


def _react(call: _Call, reactions: list[Reaction]) -> Response:
    content = call.field("content", "Reaction")
    if content not in REACTIONS:
        raise HTTPError(422, "Validation Failed", [{"resource": "Reaction", "code": "invalid"}])
    for reaction in reactions:
        if (reaction.user, reaction.content) == (call.login, content):
            return Response(200, call.gh.reaction_json(reaction))  # GitHub's answer to a repeat
    reactions.append(Reaction(call.gh.new_id(), call.login, content))
    return Response(201, call.gh.reaction_json(reactions[-1]))


@_route("POST /repos/{owner}/{repo}/issues/{issue_number}/labels")
def _add_labels(call: _Call) -> Response:
    issue = call.issue()  # the description takes {"labels": [...]}, not a bare array
    names = [label if isinstance(label, str) else label["name"] for label in call.body["labels"]]
    call.repo.add_labels(issue, names)
    return Response(200, [call.gh.label_json(call.repo, name) for name in issue.labels])


@_route("GET /repos/{owner}/{repo}/pulls")
def _list_pulls(call: _Call) -> Response:
    state, head, base = (call.query.get(k) for k in ("state", "head", "base"))
    pulls = [call.gh.pull_json(call.repo, p) for p in call.repo.pulls()]
    pulls = [
        p
        for p in pulls
        if (state or "open") in ("all", p["state"])
        and head in (None, p["head"]["label"])
        and base in (None, p["base"]["ref"])
    ]
    return call.page(pulls)


@_route("POST /repos/{owner}/{repo}/pulls")
def _create_pull(call: _Call) -> Response:
    repo = call.repo
    head, base, title = (call.field(k, "PullRequest") for k in ("head", "base", "title"))
    if not (head and base and title):
        raise HTTPError(422, "Validation Failed", [{"resource": "PullRequest", "code": "missing"}])
    owner, _, ref = head.rpartition(":")
    head_repo = f"{owner}/{repo.full_name.partition('/')[2]}" if owner else repo.full_name
    label = f"{head_repo.partition('/')[0]}:{ref}"
    for pull in repo.pulls():
        if pull.state == "open" and call.gh.pull_json(repo, pull)["head"]["label"] == label:
            message = f"A pull request already exists for {label}."
            error = {"resource": "PullRequest", "code": "custom", "message": message}
            raise HTTPError(422, "Validation Failed", [error])
    body = call.field("body", "PullRequest", "")
    pull = repo.add_pull(title, ref, base, body, call.login, head_repo)
    return Response(201, call.gh.pull_json(repo, pull))


@_route("GET /repos/{owner}/{repo}/pulls/{pull_number}")
def _get_pull(call: _Call) -> Response:
    return Response(200, call.gh.pull_json(call.repo, call.issue(pulls_only=True)))


@_route("GET /repos/{owner}/{repo}/pulls/{pull_number}/files")
def _pull_files(call: _Call) -> Response:
    pull = call.issue(pulls_only=True)
    files = [
        {"sha": _sha(path), "filename": path, "status": "modified", "additions": 1,
         "deletions": 0, "changes": 1}
        for path in pull.files
    ]  # fmt: skip
    return call.page(files)


@_route("PATCH /repos/{owner}/{repo}/pulls/{pull_number}")
def _edit_pull(call: _Call) -> Response:
    pull = call.issue(pulls_only=True)
    _update(pull, call, "PullRequest")
    pull.base_ref = call.field("base", "PullRequest", pull.base_ref)
    return Response(200, call.gh.pull_json(call.repo, pull))


@_route("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches")
def _dispatch(call: _Call) -> Response:
    if call.params["workflow_id"] not in call.repo.workflows:
        raise HTTPError(404, "Not Found")
    if not call.field("ref", "Dispatch"):
        raise HTTPError(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
    inputs = call.field("inputs", "Dispatch") or {}
    call.repo.dispatches.append(Dispatch(call.params["workflow_id"], call.body["ref"], inputs))
    return Response(204)


@_route("POST /app/installations/{installation_id}/access_tokens")
def _installation_token(call: _Call) -> Response:
    app = _verify_app_jwt(call)
    if int(call.params["installation_id"]) not in app.installations:
        raise HTTPError(404, "Not Found")
    token = f"ghs_installation_{call.gh.new_id()}"
    permissions = {"contents": "write", "issues": "write", "pull_requests": "write"}
    permissions |= (call.body or {}).get("permissions") or {}  # narrowed, as asked
    read_only = "write" not in permissions.values()
    call.gh.add_token(token, f"{app.slug}[bot]", installation=True, read_only=read_only)
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"token": token, "expires_at": expires, "permissions": permissions}
    return Response(201, body | {"repository_selection": "all"})


def _verify_app_jwt(call: _Call) -> App:
    # the JWT names its app in `iss`; its signature must verify with that app's public key
    token = call.headers["authorization"].partition(" ")[2]
    try:
        app = call.gh.apps[int(jwt.decode(token, options={"verify_signature": False})["iss"])]
        jwt.decode(token, app.public_key, algorithms=["RS256"])
    except (jwt.PyJWTError, KeyError, ValueError) as e:
        raise HTTPError(401, "A JSON web token could not be decoded") from e
    return app


@_route("GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs")
def _list_workflow_runs(call: _Call) -> Response:
    workflow = call.params["workflow_id"]
    runs = [
        r
        for r in call.repo.workflow_runs
        if workflow in (str(r["workflow_id"]), r["path"].rpartition("/")[2])
        and all(
            call.query.get(key) in (None, r[field])
            for key, field in (("head_sha", "head_sha"), ("branch", "head_branch"),
                               ("event", "event"), ("status", "status"))
        )
    ]  # fmt: skip
    page = call.page(runs[::-1])  # newest first
    return Response(200, {"total_count": len(runs), "workflow_runs": page.body}, page.headers)


@_route("GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls")
def _pulls_of_commit(call: _Call) -> Response:
    sha = call.params["commit_sha"]
    pulls = [p for p in call.repo.pulls() if sha in (p.head_sha, p.merge_commit_sha)]
    return call.page([call.gh.pull_json(call.repo, p) for p in pulls])


@_route("GET /repos/{owner}/{repo}/commits/{ref}/status")
def _combined_status(call: _Call) -> Response:
    # as GitHub: the latest status per context, newest first; failure beats pending beats success
    repo, sha = call.repo, call.params["ref"]
    latest: dict[str, dict[str, Any]] = {}
    for status in reversed(repo.statuses.get(sha, [])):
        latest.setdefault(status["context"], status)
    states = {s["state"] for s in latest.values()}
    state = (
        "failure" if states & {"failure", "error"}
        else "pending" if not states or "pending" in states
        else "success"
    )  # fmt: skip
    page = call.page(list(latest.values()))
    body = {
        "state": state,
        "statuses": page.body,
        "sha": sha,
        "total_count": len(latest),
        "repository": call.gh.repo_json(repo.full_name),
        "commit_url": f"{call.gh.url}/repos/{repo.full_name}/commits/{sha}",
        "url": f"{call.gh.url}/repos/{repo.full_name}/commits/{sha}/status",
    }
    return Response(200, body, page.headers)


# -- the HTTP server -------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as PyGithub's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't delay the second
    server: _Server

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.fake.handle(self.command, self.path, raw, headers)
        payload = _encode(response.body)
        self.send_response(response.status)
        for name, value in _headers(response, len(payload)).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is `FakeGitHub.requests`


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def _headers(response: Response, length: int) -> dict[str, str]:
    reset = int(datetime.now(UTC).timestamp()) + 3600
    kind = "text/html" if isinstance(response.body, str) else "application/json"
    return {
        "Content-Type": f"{kind}; charset=utf-8",
        "Content-Length": str(length),
        "X-GitHub-Media-Type": "github.v3; format=json",
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "4999",
        "X-RateLimit-Reset": str(reset),
        "X-RateLimit-Resource": "core",
        **response.headers,
    }


@pytest.fixture(name="fake_github")  # registered for all tests by conftest's pytest_plugins
def fake_github() -> Iterator[FakeGitHub]:
    """A running fake GitHub; its `token` authenticates as github-actions[bot]."""
    with FakeGitHub().serve() as fake:
        yield fake
    assert not fake.violations, "requests off GitHub's REST description:\n" + "\n".join(
        fake.violations
    )
