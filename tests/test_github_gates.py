"""Gates decided by comments on GitHub: an execution with gated steps parks in the Action (its
branch and journal pushed, the run over) and `/tars-bot approve|reject` comments continue it, in
new runs on fresh checkouts, against the fake GitHub and a bare `origin`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tars_bot.github.commands import Command, CommandError, parse_command
from tars_bot.models import Execution
from tars_bot.system import ExecutionSystem
from tests.helpers import comment_payload, git, job_checkout, reactions, run_action, stage

GATED_ISSUE = """\
Three small files, each approved on its own.

```yaml
approval: each_step
steps:
  - {name: s1, write: {path: src/s1.txt, content: "ok1\\n"}}
  - {name: s2, write: {path: src/s2.txt, content: "ok2\\n"}}
  - {name: s3, write: {path: src/s3.txt, content: "ok3\\n"}}
```
"""
BRANCH = "tars-bot/issue-1"


class Runs:
    """Each comment handled by a new run of the Action on a fresh checkout of origin."""

    def __init__(self, fake_github, tmp_path: Path, origin: Path, repo) -> None:
        self.fake_github, self.tmp_path, self.origin, self.repo = (
            fake_github,
            tmp_path,
            origin,
            repo,
        )
        self.count = 0

    def comment(self, body: str, user: str = "writer") -> tuple[int, dict]:
        return self.deliver(comment_payload(self.repo, 1, body, user))

    def deliver(self, payload: dict) -> tuple[int, dict]:
        self.count += 1
        checkout = job_checkout(self.origin, f"run-{self.count}")
        code = run_action(self.fake_github, self.tmp_path, checkout, "issue_comment", payload)
        return code, payload

    def reply_to(self, payload: dict) -> str:
        marker = f"tars-bot:comment={payload['comment']['id']}"
        [reply] = [c.body for c in self.repo.comments_on(1) if marker in c.body]
        return reply

    def status(self) -> str:
        """The execution's status comment: one, edited in place from gate to gate."""
        [status] = [c.body for c in self.repo.comments_on(1) if "tars-bot:gates=" in c.body]
        return status

    def on_origin(self) -> Execution:
        """The execution as origin's journal holds it: what the next run starts from."""
        self.count += 1
        system = ExecutionSystem(job_checkout(self.origin, f"look-{self.count}"))
        system.fetch_journal("origin")
        [execution] = system.history()
        return execution


def step_commits(origin: Path) -> list[str]:
    return git(origin, "log", "--format=%s", f"main..{BRANCH}").splitlines()


def approve_comment(reply: str) -> str:
    """The comment that continues it, as the reply or status comment says (last: a reply
    quotes the command it answers first)."""
    found = re.findall(r"`(/tars-bot approve --step \d+ --sha [0-9a-f]{10})`", reply)
    assert found, reply
    return found[-1]


def parked_at(runs: Runs, step: int, reply: str) -> Execution:
    """Parked at `step` on origin; the status comment shows it, and `reply` the comment that
    continues it."""
    execution = runs.on_origin()
    assert execution.state == "parked" and execution.gate and execution.gate.step == step
    assert git(runs.origin, "rev-parse", BRANCH) == execution.gate.commit  # up to the gate
    status = runs.status()
    assert f"dev: step {step}/3 ⏸ waiting for approval" in status
    assert f"expires at {execution.gate.expires_at}" in status
    assert approve_comment(status) == approve_comment(reply)
    sha = execution.gate.commit[:10]
    assert approve_comment(reply) == f"/tars-bot approve --step {step} --sha {sha}"
    return execution


def test_each_step_parks_and_each_approve_comment_resumes_once(setup, fake_github, tmp_path):
    _, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)

    code, execute = runs.comment("/tars-bot execute")
    assert code == 0  # parked: the run ended, successfully; no job waits
    reply = runs.reply_to(execute)
    parked_at(runs, 1, reply)
    assert len(step_commits(origin)) == 1

    for step in (2, 3):
        code, approve = runs.comment(approve_comment(reply))
        assert code == 0 and reactions(repo, approve["comment"]["id"]) == ["eyes", "+1"]
        assert runs.deliver(approve)[0] == 0  # the same comment delivered again: no second resume
        assert len(step_commits(origin)) == step
        reply = runs.reply_to(approve)
        execution = parked_at(runs, step, reply)
        decided = execution.gates[-2].decision
        assert decided is not None and decided.via == "comment"
        assert decided.comment_id == approve["comment"]["id"]
        assert decided.by == "writer" and decided.permission == "write"
    assert not repo.pulls()  # no pull request before the last approval

    code, last = runs.comment(approve_comment(reply))
    assert code == 0 and runs.on_origin().state == "succeeded"
    assert len(step_commits(origin)) == 3
    [pull] = repo.pulls()
    assert pull.head_ref == BRANCH and runs.status().startswith("✅ Executed: ")
    assert f": succeeded, https://github.com/octo/app/pull/{pull.number}." in runs.reply_to(last)


def test_a_reader_and_a_stale_sha_are_refused(setup, fake_github, tmp_path):
    _, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    _, execute = runs.comment("/tars-bot execute")
    gate = parked_at(runs, 1, runs.reply_to(execute)).gate
    assert gate is not None

    code, _ = runs.comment(f"/tars-bot approve --step 1 --sha {gate.commit[:10]}", user="reader")
    assert code == 0
    refusal = repo.comments_on(1)[-1]
    assert "Sorry @reader" in refusal.body and "you have read permission" in refusal.body

    code, stale = runs.comment("/tars-bot approve --step 1 --sha 0123456789")
    assert code == 1
    said = runs.reply_to(stale)
    assert "--sha 0123456789 is not the commit of the pending gate" in said
    assert f"gate step-1 (step 1, commit {gate.commit[:10]})" in said

    assert runs.on_origin().state == "parked" and len(step_commits(origin)) == 1


def test_a_reject_comment_rolls_back(setup, fake_github, tmp_path):
    _, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    runs.comment("/tars-bot execute")

    code, reject = runs.comment("/tars-bot reject --step 1 not what we need")
    assert code == 0
    execution = runs.on_origin()
    assert execution.state == "rolled_back"
    decision = execution.gates[-1].decision
    assert decision is not None and decision.verdict == "reject"
    assert decision.reason == "not what we need" and decision.comment_id == reject["comment"]["id"]
    assert git(origin, "branch", "--list", BRANCH) == ""  # the remote branch followed
    assert ": rolled back. Its status comment is updated in place" in runs.reply_to(reject)
    status = runs.status()
    assert "State: **rolled back**" in status and "rejected by writer: not what we need" in status


def test_the_split_workflow_parks_through_its_publish_job(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    payload = comment_payload(repo, 1, "/tars-bot execute")
    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    runner = job_checkout(origin, "execute-job")
    assert stage(fake_github, tmp_path, runner, "execute", payload) == 0
    assert git(origin, "for-each-ref", "refs/heads/tars-bot") == ""  # nothing written there

    assert (
        stage(fake_github, tmp_path, job_checkout(origin, "publish-job"), "publish", payload) == 0
    )
    runs = Runs(fake_github, tmp_path, origin, repo)
    execution = parked_at(runs, 1, runs.reply_to(payload))
    assert execution.pushed_to == "origin" and not repo.pulls()


def split_run(fake_github, tmp_path: Path, origin: Path, payload: dict, name: str) -> None:
    """authorize, execute (no write token), publish: each job in a fresh checkout."""
    for job in ("authorize", "execute", "publish"):
        runner = job_checkout(origin, f"{name}-{job}")
        assert stage(fake_github, tmp_path, runner, job, payload) == 0, job


def test_the_split_workflow_resumes_in_its_execute_job(setup, fake_github, tmp_path):
    _, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    execute = comment_payload(repo, 1, "/tars-bot execute")
    split_run(fake_github, tmp_path, origin, execute, "first")
    reply = runs.reply_to(execute)
    parked_at(runs, 1, reply)

    approve = comment_payload(repo, 1, approve_comment(reply))
    split_run(fake_github, tmp_path, origin, approve, "second")
    execution = parked_at(runs, 2, runs.reply_to(approve))
    decision = execution.gates[0].decision
    assert decision is not None and decision.comment_id == approve["comment"]["id"]
    assert len(step_commits(origin)) == 2
    # delivered again: the authorize job says there is nothing to do; no job after it runs
    assert stage(fake_github, tmp_path, job_checkout(origin, "again"), "authorize", approve) == 0
    assert (tmp_path / "output-authorize").read_text().endswith("act=false\nexecute=false\n")
    assert len([c for c in repo.comments_on(1) if c.user != "writer"]) == 2

    reject = comment_payload(repo, 1, "/tars-bot reject")
    split_run(fake_github, tmp_path, origin, reject, "third")
    assert runs.on_origin().state == "rolled_back"
    assert git(origin, "branch", "--list", BRANCH) == ""


def test_the_publish_job_believes_no_decision_but_its_comments(setup, fake_github, tmp_path):
    _, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    execute = comment_payload(repo, 1, "/tars-bot execute")
    split_run(fake_github, tmp_path, origin, execute, "first")
    command = approve_comment(runs.reply_to(execute))
    # the execute job of one approve comment, its bundle handed to the publish job of another
    other = comment_payload(repo, 1, command)
    assert stage(fake_github, tmp_path, job_checkout(origin, "a"), "execute", other) == 0
    approve = comment_payload(repo, 1, command)
    assert stage(fake_github, tmp_path, job_checkout(origin, "b"), "authorize", approve) == 0
    assert stage(fake_github, tmp_path, job_checkout(origin, "c"), "publish", approve) == 1

    said = runs.reply_to(approve)
    assert f"gate step-1 was not decided by comment {approve['comment']['id']}" in said
    assert runs.on_origin().state == "parked" and len(step_commits(origin)) == 1


def test_approve_all_runs_to_the_end_and_on_reject_step_goes_on(setup, fake_github, tmp_path):
    _, origin, repo = setup
    seed = job_checkout(origin, "seed-config")
    (seed / "pyproject.toml").write_text('[tool.tars-bot]\non_reject = "step"\n')
    git(seed, "add", "pyproject.toml")
    git(seed, "commit", "-qm", "on_reject step")
    git(seed, "push", "-q", "origin", "HEAD:main")
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    runs.comment("/tars-bot execute")

    code, reject = runs.comment("/tars-bot reject --step 1 not this one")
    assert code == 0
    execution = parked_at(runs, 2, runs.reply_to(reject))  # step 1 reverted, step 2 ran
    assert [s.state for s in execution.steps][:2] == ["reverted", "applied"]

    code, _ = runs.comment(f"{approve_comment(runs.status())} --all")
    assert code == 0 and runs.on_origin().state == "succeeded"
    assert len(repo.pulls()) == 1
    assert git(origin, "show", f"{BRANCH}:src/s3.txt") == "ok3"
    assert git(origin, "ls-tree", "--name-only", f"{BRANCH}:src") == "io.py\ns2.txt\ns3.txt"


def test_the_app_s_local_worker_decides_gates_without_its_write_token(setup, fake_github, tmp_path):
    from tests.test_github_stages import INSTALLATION, local_run

    _, origin, repo = setup
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    app = fake_github.add_app_with_key(42, "tars-bot", installation_id=INSTALLATION)
    local_run(fake_github, tmp_path, repo, 1, "/tars-bot execute", app)
    status = runs.status()
    parked_at(runs, 1, status)

    before = len(fake_github.requests)
    local_run(fake_github, tmp_path, repo, 1, approve_comment(status), app)
    parked_at(runs, 2, runs.status())
    [read_only] = [t for t, who in fake_github.tokens.items() if who.read_only][-1:]
    by_token = [
        r
        for r in fake_github.requests[before:]
        if r.headers.get("authorization", "").endswith(read_only)
    ]
    assert by_token and {r.method for r in by_token} == {"GET"}  # the steps ran with this one


def test_gate_commands_parse_as_written():
    assert parse_command("/tars-bot approve --step 2 --sha 9F2C1A4B7E --all") == Command(
        "approve", step=2, sha="9f2c1a4b7e", approve_all=True
    )
    assert parse_command("/tars-bot reject --step 1 not what we need") == Command(
        "reject", step=1, reason="not what we need"
    )
    assert parse_command("/tars-bot resume") == Command("resume")
    for wrong, said in [
        ("/tars-bot approve --through 3 --all", "not allowed with argument"),
        ("/tars-bot approve --sha xyz0", "expected 4 to 40 hex digits"),
        ("/tars-bot approve --step 0", "expected a step number from 1"),
    ]:
        with pytest.raises(CommandError, match=said):
            parse_command(wrong)


def test_the_commenter_who_asked_may_not_approve_under_not_self(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    (checkout / "pyproject.toml").write_text('[tool.tars-bot]\napproval_require = ["not_self"]\n')
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "Approvals by someone else")
    git(checkout, "push", "-q", "origin", "HEAD:main")
    repo.add_collaborator("maintainer", "maintain")
    repo.add_issue("gated", GATED_ISSUE)
    runs = Runs(fake_github, tmp_path, origin, repo)
    _, execute = runs.comment("/tars-bot execute")  # by writer
    execution = parked_at(runs, 1, runs.reply_to(execute))
    assert execution.requested_by == "writer"  # the commenter, not the runner's login

    code, own = runs.comment(approve_comment(runs.reply_to(execute)))
    assert code == 1
    assert "the gate requires not_self" in runs.reply_to(own)
    assert len(step_commits(origin)) == 1

    code, other = runs.comment(approve_comment(runs.reply_to(execute)), user="maintainer")
    assert code == 0, runs.reply_to(other)
    assert len(step_commits(origin)) == 2
