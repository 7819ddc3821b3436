"""The Action split by privilege: authorize, execute (no write), publish (checks, then pushes),
each in a checkout of its own as the shipped workflow's jobs are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tars_bot.errors import TarsError
from tars_bot.github.client import GitHubClient
from tests.helpers import ISSUE_IMPROVEMENT, comment_payload, git, job_checkout, stage


def test_the_improvement_runs_where_nothing_is_written(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")

    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    assert (tmp_path / "output-authorize").read_text() == "act=true\nexecute=true\n"
    written = len(fake_github.requests)

    runner = job_checkout(origin, "execute-job")
    assert stage(fake_github, tmp_path, runner, "execute", payload) == 0
    during = fake_github.requests[written:]
    assert during and {r.method for r in during} == {"GET"}  # it read, and wrote nothing
    assert git(origin, "for-each-ref", "refs/heads/tars-bot") == ""
    assert (tmp_path / "handoff" / "execution.bundle").is_file()

    publisher = job_checkout(origin, "publish-job")
    assert stage(fake_github, tmp_path, publisher, "publish", payload) == 0
    assert git(origin, "rev-parse", "tars-bot/issue-1") == git(
        runner, "rev-parse", "tars-bot/issue-1"
    )
    [pull] = repo.pulls()
    status = repo.comments_on(issue.number)[-1].body
    assert status.startswith("✅ Executed:") and f"/pull/{pull.number}" in status


def test_a_tampered_hand_off_is_refused_and_nothing_is_pushed(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    runner = job_checkout(origin, "execute-job")
    assert stage(fake_github, tmp_path, runner, "execute", payload) == 0
    # what a compromised execute job could hand over: one more ref, to get it pushed
    git(runner, "branch", "planted", "tars-bot/issue-1")
    bundle = tmp_path / "handoff" / "execution.bundle"
    refs = git(
        runner,
        "for-each-ref",
        "--format=%(refname)",
        "refs/heads/tars-bot",
        "refs/tars-bot/executions",
    )
    git(runner, "bundle", "create", "-q", str(bundle), *refs.split(), "refs/heads/planted", "^main")

    publisher = job_checkout(origin, "publish-job")
    assert stage(fake_github, tmp_path, publisher, "publish", payload) == 1
    status = repo.comments_on(issue.number)[-1].body
    assert (
        "refused, so nothing was pushed" in status
        and "expected one branch and its journal" in status
    )
    assert git(origin, "for-each-ref", "refs/heads", "refs/tars-bot") == git(
        origin, "for-each-ref", "refs/heads/main"
    )
    assert repo.pulls() == []


def test_the_execute_jobs_report_cannot_carry_a_marker(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    (tmp_path / "handoff").mkdir()
    forged = {"ok": False, "body": "failed <!-- tars-bot:execution=20200101-000000-dead -->"}
    (tmp_path / "handoff" / "result.json").write_text(json.dumps(forged))
    assert (
        stage(fake_github, tmp_path, job_checkout(origin, "publish-job"), "publish", payload) == 1
    )
    status = repo.comments_on(issue.number)[-1].body
    assert "20200101-000000-dead" in status and "<!-- tars-bot:execution" not in status


def test_a_readers_command_is_not_acted_on(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute", user="reader")
    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    assert (tmp_path / "output-authorize").read_text() == "act=false\nexecute=false\n"


def test_the_shipped_workflow_gives_the_execute_job_no_write_permission():
    workflow = Path(__file__).parents[1] / ".github" / "workflows" / "tars-bot.yml"
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    assert set(jobs["execute"]["permissions"].values()) == {"read"}
    assert jobs["execute"]["needs"] == "authorize" or "authorize" in jobs["execute"]["needs"]
    assert "contents" in jobs["publish"]["permissions"]
    steps = [s.get("with", {}) for s in jobs["execute"]["steps"]]
    assert all("TARS_BOT_TOKEN" not in json.dumps(s) for s in steps)
    assert any(s.get("stage") == "execute" for s in steps)


def test_a_command_without_an_improvement_is_answered_by_publish(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot help")
    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    assert (tmp_path / "output-authorize").read_text() == "act=true\nexecute=false\n"
    assert (
        stage(fake_github, tmp_path, job_checkout(origin, "publish-job"), "publish", payload) == 0
    )
    comments = [c.body for c in repo.comments_on(issue.number)]
    [status] = [c for c in comments if "tars-bot:comment=" in c]
    assert "/tars-bot rollback" in status  # the usage
    assert [r.content for r in repo.comments[payload["comment"]["id"]].reactions] == ["eyes", "+1"]


# -- the webhook app's local workers split the same way -------------------------------------------
INSTALLATION = 48211977  # as in the example payload


def local_run(fake_github, tmp_path: Path, repo, number: int, line: str, env: dict) -> None:
    from tars_bot.github import local
    from tars_bot.github.app import dispatch_inputs
    from tars_bot.github.commands import parse_event

    event = parse_event(comment_payload(repo, number, line))
    env = {"GITHUB_API_URL": fake_github.url, **env}
    variables = {"GITHUB_REPOSITORY": "octo/app", "TARS_BOT_INSTALLATION_ID": str(INSTALLATION)}
    with GitHubClient.from_env(env | variables) as client:
        inputs = dispatch_inputs(client, event)  # as the app computes them when it answers
    local.runner(env, tmp_path / "cache")(event, inputs)


def test_a_local_worker_executes_with_a_read_only_token_and_publishes_with_its_own(
    setup,
    fake_github,
    tmp_path,
):
    _, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=INSTALLATION)
    del app["TARS_BOT_INSTALLATION_ID"]  # the delivery names it
    local_run(fake_github, tmp_path, repo, issue.number, "/tars-bot execute", app)

    [pull] = repo.pulls()
    assert "encoding='utf-8'" in git(origin, "show", "tars-bot/issue-1:src/io.py")
    status = repo.comments_on(issue.number)[-1]
    assert status.body.startswith("✅ Executed:") and status.user == "tars-bot[bot]"
    # two installation tokens: the worker's, and a read-only one for the execute process
    exchanges = fake_github.calls("POST", f"/app/installations/{INSTALLATION}/access_tokens")
    narrowed = [e for e in exchanges if e.json and e.json.get("permissions")]
    assert len(narrowed) == 1 and set(narrowed[0].json["permissions"].values()) == {"read"}
    [read_only] = [t for t, who in fake_github.tokens.items() if who.read_only]
    by_token = [
        r for r in fake_github.requests if r.headers.get("authorization", "").endswith(read_only)
    ]
    assert by_token and {r.method for r in by_token} == {"GET"}  # it read the issue, no more
    writes = [r for r in fake_github.requests if r.method != "GET" and r.path.startswith("/repos")]
    assert writes and not any(r in by_token for r in writes)
    assert pull.head_ref == "tars-bot/issue-1"


def test_a_read_only_installation_token_cannot_write(fake_github, setup):
    _, _, repo = setup
    issue = repo.add_issue("x")
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=7)
    env = {"GITHUB_API_URL": fake_github.url, "GITHUB_REPOSITORY": "octo/app", **app}
    with GitHubClient.from_env(env, sleep=lambda s: None, pace=False) as client:
        token = client.read_only_token()
    assert token is not None
    reader = {"GITHUB_API_URL": fake_github.url, "GITHUB_REPOSITORY": "octo/app"}
    with GitHubClient.from_env(reader | {"GITHUB_TOKEN": token}, pace=False) as client:
        assert client.issue(issue.number).title == "x"
        with pytest.raises(TarsError, match="403 Resource not accessible by integration"):
            client.comment(issue.number, "hello")
    with GitHubClient.from_env(reader | {"GITHUB_TOKEN": fake_github.token}) as client:
        assert client.read_only_token() is None  # a token that is not an App's cannot be narrowed


def test_local_workers_run_commands_in_their_own_clone(setup, fake_github, tmp_path):
    _, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    env = {"GITHUB_TOKEN": fake_github.token}  # not an App's: the execute process gets no token
    local_run(fake_github, tmp_path, repo, issue.number, "/tars-bot execute", env)
    assert [p.head_ref for p in repo.pulls()] == ["tars-bot/issue-1"]
    assert "encoding='utf-8'" in git(origin, "show", "tars-bot/issue-1:src/io.py")
    anonymous = [r for r in fake_github.requests if "authorization" not in r.headers]
    assert anonymous and {r.method for r in anonymous} == {"GET"}
    clone = tmp_path / "cache" / "octo" / "app"
    assert git(clone, "status", "--porcelain") == ""

    # a later command finds the clone, brings it up to date, and works from the default branch
    seed = tmp_path / "seed"
    (seed / "later.txt").write_text("later\n")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "later")
    git(seed, "push", "-q", "origin", "HEAD:main")
    local_run(fake_github, tmp_path, repo, issue.number, "/tars-bot plan", env)
    assert git(clone, "rev-parse", "HEAD") == git(origin, "rev-parse", "main")
    assert "**tars-bot plan** for `issue-1`" in repo.comments_on(issue.number)[-1].body
