"""The GitHub client, through PyGithub, against the fake GitHub server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from github import Auth, Github
from hypothesis import given
from hypothesis import strategies as st

from tars_bot.errors import TarsError
from tars_bot.github.client import BODY_LIMIT, GitHubClient, PullRequest, fit_body
from tests.fake_github import FakeGitHub, Repo

MARKER = "<!-- tars-bot:execution=20240101-abc -->"


@pytest.fixture
def repo(fake_github: FakeGitHub) -> Repo:
    return fake_github.add_repo("octo/app", default_branch="trunk")


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(fake_github: FakeGitHub, sleeps: list[float]) -> Iterator[Callable[..., GitHubClient]]:
    """Clients for octo/app; `token=None` connects without one. All are closed afterwards."""
    clients: list[GitHubClient] = []

    def make(token: str | None = fake_github.token, **variables: str) -> GitHubClient:
        env = {"GITHUB_API_URL": fake_github.url, "GITHUB_REPOSITORY": "octo/app", **variables}
        if token:
            env["GITHUB_TOKEN"] = token
        clients.append(GitHubClient.from_env(env, sleep=sleeps.append, pace=False))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(connect: Callable[..., GitHubClient], repo: Repo) -> GitHubClient:
    return connect()


@pytest.mark.parametrize("role", ["admin", "maintain", "write", "triage", "read"])
def test_permission_is_the_role(client, repo, role):
    repo.add_collaborator("alice", role)
    assert client.permission("alice") == role


def test_a_custom_role_counts_as_its_base_permission(client, repo):
    repo.add_collaborator("carol", "release-manager", permission="write")
    assert client.permission("carol") == "write"


def test_non_collaborators_can_read_a_public_repository_and_nothing_else(
    fake_github, connect, repo
):
    assert connect().permission("mallory") == "read"
    fake_github.add_repo("octo/secret", private=True)
    secret = connect(GITHUB_REPOSITORY="octo/secret")
    assert secret.permission("mallory") == "none"


def test_permission_needs_push_access_of_the_caller(fake_github, connect, repo):
    fake_github.add_token("ghp_reader", "rita")
    repo.add_collaborator("rita", "read")
    with pytest.raises(
        TarsError,
        match=r"^GitHub API: cannot read alice's permission on octo/app: 403 Must have push access",
    ):
        connect("ghp_reader").permission("alice")


def test_reactions_on_a_comment(client, repo):
    issue = repo.add_issue("Use UTF-8")
    comment = repo.add_comment(issue.number, "/tars-bot plan", "alice")
    client.add_reaction(comment.id, "eyes")
    client.add_reaction(comment.id, "eyes")  # GitHub answers a repeat with the existing one
    assert [(r.user, r.content) for r in comment.reactions] == [("github-actions[bot]", "eyes")]


def test_an_unknown_reaction_is_a_tars_error(client, repo, fake_github):
    comment = repo.add_comment(repo.add_issue("x").number, "hi")
    with pytest.raises(TarsError, match=f"react to comment {comment.id}: 422 Invalid request"):
        client.add_reaction(comment.id, "thumbs-up")
    assert len(fake_github.violations) == 1  # meant: the fake answers as GitHub would
    fake_github.violations.clear()


def test_comment_then_find_and_edit_it_in_place(client, repo):
    issue = repo.add_issue("Use UTF-8")
    repo.add_comment(issue.number, f"quoting the bot: {MARKER}", "alice")  # a person's, not ours
    comment_id = client.comment(issue.number, f"Running…\n{MARKER}")
    assert client.find_comment(issue.number, MARKER) == comment_id
    client.edit_comment(comment_id, f"Done.\n{MARKER}")
    assert repo.comments[comment_id].body == f"Done.\n{MARKER}"
    assert repo.comments[comment_id].user == "github-actions[bot]"
    assert client.find_comment(issue.number, "<!-- tars-bot:execution=other -->") is None


def test_an_installation_token_does_not_ask_who_it_is(client, repo, fake_github):
    issue = repo.add_issue("x")
    ours = repo.add_comment(issue.number, MARKER, "github-actions[bot]")
    assert client.find_comment(issue.number, MARKER) == ours.id
    assert fake_github.calls("GET", "/user") == []


def test_a_token_github_refuses_to_identify_counts_as_an_installation(fake_github, connect, repo):
    # tokens from before GitHub's prefixes (older GitHub Enterprise Server) tell only by a 403
    fake_github.add_token(
        "0123456789abcdef0123456789abcdef01234567", "tars[bot]", installation=True
    )
    issue = repo.add_issue("x")
    repo.add_comment(issue.number, MARKER, "alice")
    ours = repo.add_comment(issue.number, MARKER, "tars[bot]")
    client = connect("0123456789abcdef0123456789abcdef01234567")
    assert client.find_comment(issue.number, MARKER) == ours.id
    assert client.login is None
    assert len(fake_github.calls("GET", "/user")) == 1


def test_find_comment_reads_100_at_a_time_newest_first(client, repo, fake_github):
    issue = repo.add_issue("busy")
    for n in range(245):
        repo.add_comment(issue.number, f"comment {n}", "alice")
    repo.add_comment(issue.number, MARKER, "github-actions[bot]")
    ours = repo.add_comment(issue.number, MARKER, "github-actions[bot]")
    repo.add_comment(issue.number, "later", "alice")
    assert client.find_comment(issue.number, MARKER) == ours.id
    pages = fake_github.calls("GET", f"/repos/octo/app/issues/{issue.number}/comments")
    # the first page tells where the last one is; the match is there, page 2 is never read
    assert [r.query for r in pages] == [{"per_page": "100"}, {"per_page": "100", "page": "3"}]
    assert client.find_comment(issue.number, "<!-- tars-bot:none -->") is None


def test_a_marker_counts_only_in_what_tars_bot_wrote(fake_github, connect, repo):
    issue = repo.add_issue("x")
    repo.add_comment(issue.number, MARKER, "mallory")
    client = connect(fake_github.token)
    assert client.find_comment(issue.number, MARKER) is None
    assert client.is_ours("other-app[bot]")  # an installation that wrote nothing trusts bots
    client.comment(issue.number, "hello")  # GitHub tells who we are by what we write
    assert client.is_ours("github-actions[bot]")
    assert not client.is_ours("other-app[bot]") and not client.is_ours("mallory")


def test_with_a_personal_token_ours_means_written_by_that_user(fake_github, connect, repo):
    fake_github.add_token("ghp_maintainer", "maya")
    issue = repo.add_issue("x")
    repo.add_comment(issue.number, MARKER, "other-app[bot]")
    mine = repo.add_comment(issue.number, MARKER, "maya")
    client = connect("ghp_maintainer")
    assert client.login == "maya"
    assert client.find_comment(issue.number, MARKER) == mine.id


def test_issue_record(client, repo):
    repo.add_issue("Use UTF-8", "```yaml\ntitle: t\n```", labels=["tars-bot"])
    assert client.issue(1).__dict__ == {
        "number": 1,
        "title": "Use UTF-8",
        "body": "```yaml\ntitle: t\n```",
        "state": "open",
        "labels": ("tars-bot",),
        "is_pull_request": False,
        "head_sha": None,
        "head_ref": None,
        "head_repo_full_name": None,
        "base_repo_full_name": None,
        "author": "octocat",
        "merged": False,
        "merge_commit_sha": None,
    }


def test_a_merged_pull_request_says_as_what(client, repo):
    pull = repo.add_pull("Use UTF-8", "tars-bot/utf8-io")
    assert (client.issue(pull.number).merged, client.issue(pull.number).merge_commit_sha) == (
        False,
        None,
    )
    repo.merge_pull(pull, "c" * 40)
    record = client.issue(pull.number)
    assert (record.state, record.merged, record.merge_commit_sha) == ("closed", True, "c" * 40)


def test_pull_request_record_tells_forks_apart(client, repo):
    repo.branches["feature"] = "a" * 40
    own = repo.add_pull("Own branch", "feature")
    fork = repo.add_pull("From a fork", "patch-1", head_repo="mallory/app")

    record = client.issue(own.number)
    assert (record.is_pull_request, record.head_sha, record.head_ref) == (True, "a" * 40, "feature")
    assert (record.head_repo_full_name, record.base_repo_full_name) == ("octo/app", "octo/app")
    assert not record.from_fork
    assert client.issue(fork.number).head_repo_full_name == "mallory/app"
    assert client.issue(fork.number).from_fork


def test_a_missing_issue_is_a_tars_error(client, repo):
    with pytest.raises(TarsError, match=r"^GitHub API: cannot read #9: 404 Not Found$"):
        client.issue(9)


def test_pull_request_is_opened_then_updated(client, repo, fake_github):
    first = client.open_or_update_pull_request("tars-bot/utf8-io", "trunk", "Use UTF-8", "first")
    assert first == PullRequest(1, "https://github.com/octo/app/pull/1", ())
    client.add_labels(first.number, ["tars-bot"])
    again = client.open_or_update_pull_request("tars-bot/utf8-io", "trunk", "Use UTF-8 (2)", "2nd")
    assert again == PullRequest(1, "https://github.com/octo/app/pull/1", ("tars-bot",))
    pull = repo.issues[again.number]
    assert (pull.title, pull.body, pull.labels) == ("Use UTF-8 (2)", "2nd", ["tars-bot"])
    assert (pull.head_ref, pull.base_ref, pull.state) == ("tars-bot/utf8-io", "trunk", "open")
    assert len(fake_github.calls("POST", "/repos/octo/app/pulls")) == 1
    listed = fake_github.calls("GET", "/repos/octo/app/pulls")
    assert listed[0].query == {"state": "open", "head": "octo:tars-bot/utf8-io", "per_page": "100"}


def test_labels_are_sent_as_github_s_rest_description_defines_them(client, repo, fake_github):
    pull = repo.add_pull("Use UTF-8", "tars-bot/utf8-io")
    client.add_labels(pull.number, ["tars-bot", "automated"])
    [call] = fake_github.calls("POST", f"/repos/octo/app/issues/{pull.number}/labels")
    assert call.json == {"labels": ["tars-bot", "automated"]}
    assert pull.labels == ["tars-bot", "automated"]


def test_a_closed_pull_request_is_not_reused(client, repo):
    old = repo.add_pull("old attempt", "tars-bot/utf8-io", base="trunk")
    old.state = "closed"
    pull = client.open_or_update_pull_request("tars-bot/utf8-io", "trunk", "t", "b")
    assert pull.number != old.number


def test_close_pull_request_with_a_comment(client, repo):
    pull = repo.add_pull("Use UTF-8", "tars-bot/utf8-io")
    client.close_pull_request(pull.number, "Rolled back: the tests failed.")
    assert pull.state == "closed"
    assert [c.body for c in repo.comments_on(pull.number)] == ["Rolled back: the tests failed."]


def test_close_pull_request_without_a_comment(client, repo):
    pull = repo.add_pull("Use UTF-8", "tars-bot/utf8-io")
    client.close_pull_request(pull.number)
    assert (pull.state, repo.comments_on(pull.number)) == ("closed", [])


def test_workflow_dispatch_is_recorded(client, repo, fake_github):
    client.dispatch_workflow(
        "tars-bot.yml", "trunk", {"improvement-id": "utf8-io", "command": "plan"}
    )
    assert [(d.workflow, d.ref, d.inputs) for d in repo.dispatches] == [
        ("tars-bot.yml", "trunk", {"improvement-id": "utf8-io", "command": "plan"})
    ]
    [call] = fake_github.calls("POST")
    assert call.path == "/repos/octo/app/actions/workflows/tars-bot.yml/dispatches"


def test_an_unknown_workflow_is_a_tars_error(client, repo):
    with pytest.raises(TarsError, match=r"start workflow nope\.yml on trunk: 404 Not Found"):
        client.dispatch_workflow("nope.yml", "trunk", {})


def test_default_branch(client, repo):
    assert client.default_branch() == "trunk"


def test_the_fake_serves_pygithub_a_clone_url_for_a_local_repository(fake_github, make_repo):
    origin = make_repo()
    fake_github.add_repo("octo/local", clone_url=origin)
    auth = Auth.Token(fake_github.token)
    with Github(base_url=fake_github.url, auth=auth) as github:
        repo = github.get_repo("octo/local")
        assert (repo.clone_url, repo.default_branch, repo.private) == (str(origin), "main", False)


def test_without_a_token_github_answers_401(connect, repo):
    with pytest.raises(
        TarsError, match=r"^GitHub API: cannot comment on #1: 401 Requires authentication$"
    ):
        connect(token=None).comment(1, "hello")


def test_a_wrong_token_is_bad_credentials(connect, repo):
    with pytest.raises(TarsError, match="401 Bad credentials"):
        connect("ghp_wrong").permission("alice")


def test_a_502_is_retried(client, repo, fake_github):
    repo.add_collaborator("alice", "write")
    path = "/repos/octo/app/collaborators/alice/permission"
    fake_github.fail_next(path)
    assert client.permission("alice") == "write"
    assert len(fake_github.calls("GET", path)) == 2


def test_an_edit_is_retried_after_a_502(client, repo, fake_github):
    comment = repo.add_comment(repo.add_issue("x").number, "old", "github-actions[bot]")
    fake_github.fail_next(f"/repos/octo/app/issues/comments/{comment.id}", times=2, status=503)
    client.edit_comment(comment.id, "new")
    assert comment.body == "new"


def test_a_post_answered_502_is_not_repeated(client, repo, fake_github):
    # GitHub may have created the comment before the gateway gave up; a retry could post it twice
    issue = repo.add_issue("x")
    fake_github.fail_next(f"/repos/octo/app/issues/{issue.number}/comments")
    with pytest.raises(TarsError, match=r"^GitHub API: cannot comment on #1: 502 Server Error$"):
        client.comment(issue.number, "hello")
    assert len(fake_github.calls("POST")) == 1


def test_retries_stop_with_backoff_and_github_s_answer(client, repo, fake_github, sleeps):
    repo.add_collaborator("alice", "write")
    fake_github.fail_next("/repos/octo/app/collaborators/alice/permission", times=10)
    with pytest.raises(TarsError, match="502 Server Error"):
        client.permission("alice")
    assert len(fake_github.calls("GET")) == 6
    assert sleeps == [2.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_waits_for_retry_after(client, repo, fake_github, sleeps, status):
    issue = repo.add_issue("x")
    path = f"/repos/octo/app/issues/{issue.number}/comments"
    fake_github.rate_limit_next(path, retry_after=3, status=status)
    client.comment(issue.number, "hello")
    assert sleeps == [3.0]
    assert [c.body for c in repo.comments_on(issue.number)] == ["hello"]


def test_reads_wait_out_a_rate_limit_too(client, repo, fake_github, sleeps):
    repo.add_collaborator("alice", "write")
    fake_github.rate_limit_next("/repos/octo/app/collaborators/alice/permission", times=2)
    assert client.permission("alice") == "write"
    assert sleeps == [1.0, 1.0]


def test_a_post_refused_for_another_reason_is_not_repeated(client, repo, fake_github):
    issue = repo.add_issue("x")
    path = f"/repos/octo/app/issues/{issue.number}/comments"
    fake_github.fail_next(
        path, status=403, page='{"message": "Resource not accessible by integration"}'
    )
    with pytest.raises(TarsError, match="403 Resource not accessible by integration"):
        client.comment(issue.number, "hello")
    assert len(fake_github.calls("POST", path)) == 1


def test_a_proxy_error_page_becomes_one_line(client, repo, fake_github):
    page = "<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n"
    fake_github.fail_next("/repos/octo/app", times=6, page=page)
    with pytest.raises(TarsError) as caught:
        client.default_branch()
    assert str(caught.value) == (
        "GitHub API: cannot read octo/app: 502 <html> <body> <h1>502 Bad Gateway</h1> </body> </html>"
    )


def test_an_unreachable_server_is_a_tars_error(sleeps):
    with FakeGitHub().serve() as stopped:
        url = stopped.url  # nothing listens there once the server has stopped
    env = {"GITHUB_API_URL": url, "GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "octo/app"}
    with (
        GitHubClient.from_env(env, sleep=sleeps.append, pace=False) as client,
        pytest.raises(
            TarsError, match=r"^GitHub API: cannot read alice's permission on octo/app: "
        ),
    ):
        client.permission("alice")
    assert sleeps == [2.0, 4.0, 8.0, 16.0]


def test_who_we_are_must_be_readable(connect, repo, fake_github):
    fake_github.add_token("ghp_maintainer", "maya")
    repo.add_comment(repo.add_issue("x").number, MARKER, "maya")
    fake_github.fail_next("/user", times=6)
    with pytest.raises(TarsError, match="cannot read the authenticated user: 502 Server Error"):
        connect("ghp_maintainer").find_comment(1, MARKER)


def test_a_403_page_that_is_not_json_becomes_one_line(client, repo, fake_github):
    fake_github.fail_next(
        "/repos/octo/app", status=403, page="<html>\n<h1>Access denied</h1>\n</html>"
    )
    with pytest.raises(
        TarsError,
        match=r"^GitHub API: cannot read octo/app: 403 <html> <h1>Access denied</h1> </html>$",
    ):
        client.default_branch()


def test_body_truncation_keeps_the_tail_under_the_limit():
    text = "".join(f"line {n}\n" for n in range(20_000))
    fitted = fit_body(text)
    assert len(fitted) == BODY_LIMIT
    assert fitted.endswith("line 19999\n")
    cut = len(text) - BODY_LIMIT + fitted.index("\n\n") + 2
    assert fitted.startswith(f"*[{cut:,} characters cut from the start")
    assert text.endswith(fitted[fitted.index("\n\n") + 2 :])
    assert fit_body("short") == "short"


@given(st.text(max_size=400), st.integers(min_value=80, max_value=300))
def test_fit_body_fits_and_keeps_an_unbroken_tail(text, limit):
    fitted = fit_body(text, limit)
    assert len(fitted) <= limit
    if len(text) <= limit:
        assert fitted == text
    else:
        marker, _, tail = fitted.partition("]*\n\n")
        assert text.endswith(tail)
        assert f"{len(text) - len(tail):,} characters cut" in marker


def test_a_limit_too_small_for_the_marker_is_a_programming_error():
    with pytest.raises(ValueError, match="limit 20 leaves no room"):
        fit_body("x" * 100, limit=20)


def test_long_comments_are_cut_to_what_github_accepts(client, repo):
    issue = repo.add_issue("x")
    comment_id = client.comment(issue.number, "x" * 100_000 + "the end")
    body = repo.comments[comment_id].body
    assert len(body) <= BODY_LIMIT and body.endswith("the end")


def test_from_env_needs_the_repository(fake_github):
    with pytest.raises(TarsError, match="GITHUB_REPOSITORY must be owner/name, found ''"):
        GitHubClient.from_env({"GITHUB_TOKEN": "t"})


def test_a_github_app_installation_token_is_used_when_configured(fake_github, connect, repo):
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=7)
    issue = repo.add_issue("x")
    # secrets often hold the PEM on one line, with literal \n
    app["TARS_BOT_APP_PRIVATE_KEY"] = app["TARS_BOT_APP_PRIVATE_KEY"].replace("\n", "\\n")
    client = connect(None, **app)
    comment_id = client.comment(issue.number, MARKER)
    assert repo.comments[comment_id].user == "tars-bot[bot]"
    assert client.find_comment(issue.number, MARKER) == comment_id
    [exchange] = fake_github.calls("POST", "/app/installations/7/access_tokens")
    assert exchange.headers["authorization"].startswith("Bearer ")


def test_the_installation_id_is_a_number(connect, repo, fake_github):
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=7)
    app["TARS_BOT_INSTALLATION_ID"] = "main"
    with pytest.raises(TarsError, match="TARS_BOT_INSTALLATION_ID must be a number, found 'main'"):
        connect(None, **app)


def test_a_bad_app_key_is_a_tars_error(connect, repo):
    app = {"TARS_BOT_APP_ID": "42", "TARS_BOT_INSTALLATION_ID": "7"}
    with pytest.raises(TarsError, match="TARS_BOT_APP_PRIVATE_KEY is not a usable private key"):
        connect(None, TARS_BOT_APP_PRIVATE_KEY="not a key", **app)
