"""The Action split by privilege: authorize, execute (no write), publish (checks, then pushes),
each in a checkout of its own as the shipped workflow's jobs are."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tars_bot.github import action
from tars_bot.github.client import GitHubClient
from tests.conftest import git
from tests.test_github_action import IMPROVEMENT, comment_payload, environ, setup  # noqa: F401


def stage(fake_github, tmp_path: Path, checkout: Path, name: str, payload: dict) -> int:
    env = environ(fake_github, tmp_path, "issue_comment", payload)
    env |= {"TARS_BOT_STAGE": name, "TARS_BOT_HANDOFF": str(tmp_path / "handoff")}
    env["GITHUB_OUTPUT"] = str(tmp_path / f"output-{name}")
    client = lambda e: GitHubClient.from_env(e, sleep=lambda s: None, pace=False)  # noqa: E731
    return action.run(env, checkout, client)


def job_checkout(origin: Path, name: str) -> Path:
    """What actions/checkout leaves for one job: a fresh clone of the default branch."""
    path = origin.parent / name
    git(origin.parent, "clone", "-q", str(origin), str(path))
    return path


def test_the_improvement_runs_where_nothing_is_written(setup, fake_github, tmp_path):  # noqa: F811
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", IMPROVEMENT)
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


def test_a_tampered_hand_off_is_refused_and_nothing_is_pushed(setup, fake_github, tmp_path):  # noqa: F811
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", IMPROVEMENT)
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


def test_the_execute_jobs_report_cannot_carry_a_marker(setup, fake_github, tmp_path):  # noqa: F811
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", IMPROVEMENT)
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


def test_a_readers_command_is_not_acted_on(setup, fake_github, tmp_path):  # noqa: F811
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", IMPROVEMENT)
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


def test_a_command_without_an_improvement_is_answered_by_publish(setup, fake_github, tmp_path):  # noqa: F811
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", IMPROVEMENT)
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
