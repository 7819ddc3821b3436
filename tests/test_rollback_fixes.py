"""Rollback and drop-step fixes: a per-step check failure drops the step, cascades revert only
what conflicts, rollbacks say what they did, are idempotent and mark the checks stale."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from tars_bot.git import Repo
from tars_bot.rollback import undo
from tests.helpers import (
    add_improvement,
    comment_payload,
    commit_files,
    git,
    make_validated_repo,
    run_action,
)


def status(cli, repo: Path, execution_id: str) -> dict:
    result = cli("status", "--repo", repo, "--execution-id", execution_id, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def last_id(cli, repo: Path) -> str:
    out = cli("history", "--repo", repo, "--format", "json", "--limit", "1").out
    return str(json.loads(out)[0]["id"])


def test_drop_step_drops_a_step_failing_its_quick_check(cli, make_repo):
    """A syntax error the per-step compile check finds drops that step, not the execution."""
    repo = make_repo({"src/ok.py": "A = 1\n"})
    add_improvement(
        repo,
        textwrap.dedent(
            """\
            title: three
            on_failure: drop-step
            steps:
              - {name: good, write: {path: src/a.py, content: "A = 2\\n"}}
              - {name: broken, write: {path: src/b.py, content: "def (:\\n"}}
              - {name: later, write: {path: src/c.py, content: "C = 3\\n"}}
            """
        ),
    )
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    execution = status(cli, repo, last_id(cli, repo))
    assert execution["state"] == "succeeded"
    assert [s["state"] for s in execution["steps"]] == ["applied", "reverted", "applied"]
    broken = execution["steps"][1]
    assert broken["reason"].startswith("dropped: per-step check: compile failed")
    files = git(repo, "ls-tree", "-r", "--name-only", "tars-bot/imp").split()
    assert "src/a.py" in files and "src/c.py" in files and "src/b.py" not in files
    # history stays reviewable: the step's commit, then its revert
    log = git(repo, "log", "--format=%s", "tars-bot/imp")
    assert 'Revert step 2 "broken"' in log and "broken" in log


FILES = {"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"}

THREE = """\
    title: three files
    steps:
      - {name: A, edit: {path: a.txt, search: alpha, replace: ALPHA}}
      - {name: B, edit: {path: b.txt, search: beta, replace: BETA}}
      - {name: C, edit: {path: c.txt, search: gamma, replace: GAMMA}}
    """


def executed(cli, make_repo, text: str = THREE, files: dict[str, str] = FILES) -> tuple[Path, str]:
    repo = make_repo(files)
    add_improvement(repo, textwrap.dedent(text))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    return repo, last_id(cli, repo)


def rollback(cli, repo: Path, execution_id: str, *args: str):
    return cli("rollback", "--repo", repo, "--execution-id", execution_id, *args)


def test_a_step_rollback_prints_only_what_it_did(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    assert rollback(cli, repo, execution_id, "--step", "3").code == 0
    second = rollback(cli, repo, execution_id, "--step", "1")
    assert second.code == 0, second.err
    assert 'reverted step 1 "A"' in second.out
    assert "step 3" not in second.out


def test_rolling_back_twice_is_a_no_op_that_says_so(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    assert rollback(cli, repo, execution_id, "--step", "2").code == 0
    tip = git(repo, "rev-parse", "tars-bot/imp")
    again = rollback(cli, repo, execution_id, "--step", "2")
    assert again.code == 0, again.err
    assert f"step 2 of execution {execution_id} is already rolled back" in again.out
    assert git(repo, "rev-parse", "tars-bot/imp") == tip

    assert rollback(cli, repo, execution_id).code == 0
    whole = rollback(cli, repo, execution_id)
    assert whole.code == 0, whole.err
    assert f"execution {execution_id} is already rolled back" in whole.out
    step = rollback(cli, repo, execution_id, "--step", "1")
    assert step.code == 0 and "already rolled back" in step.out


def test_reverting_every_step_rolls_the_execution_back(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    for step in ("1", "2"):
        assert rollback(cli, repo, execution_id, "--step", step).code == 0
    assert status(cli, repo, execution_id)["state"] == "succeeded"
    last = rollback(cli, repo, execution_id, "--step", "3")
    assert last.code == 0, last.err
    assert "every step is reverted" in last.out
    assert status(cli, repo, execution_id)["state"] == "rolled_back"
    assert git(repo, "branch", "--list", "tars-bot/*") == ""


NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "print('=== 1 passed in 0.01s ===')")
"""

CHECKED = THREE.rstrip(" ") + "    validation: {final: [tests]}\n"


def test_a_step_rollback_marks_the_checks_stale(cli, make_repo):
    """The checks ran on the old tip; after a step rollback no check has seen the tree."""
    files = {**FILES, "noxfile.py": NOXFILE, "pyproject.toml": '[tool.tars-bot]\nsandbox = "off"\n'}
    repo, execution_id = executed(cli, make_repo, CHECKED, files)
    assert status(cli, repo, execution_id)["checks_stale"] is None

    rolled = rollback(cli, repo, execution_id, "--step", "2")
    assert rolled.code == 0, rolled.err
    assert "checks unvalidated since rollback of step 2: check the new tip" in rolled.out
    execution = status(cli, repo, execution_id)
    assert execution["checks_stale"] == "unvalidated since rollback of step 2"
    text = cli("status", "--repo", repo, "--execution-id", execution_id).out
    assert "unvalidated since rollback of step 2" in " ".join(text.split())
    assert "on an earlier tip" in text

    # checks on the new tip make them current again
    assert cli("validate", "--repo", repo, "--execution-id", execution_id).code == 0
    assert status(cli, repo, execution_id)["checks_stale"] is None


CHECKED_ISSUE = """\
```yaml
validation: {final: [tests]}
steps:
  - {name: notes, write: {path: NOTES.md, content: "fine\\n"}}
  - {name: more, write: {path: MORE.md, content: "more\\n"}}
```
"""


def test_a_step_rollback_on_github_says_the_tip_is_unvalidated(setup, fake_github, tmp_path):
    """The pull request body and a neutral check run on the new tip say no check has seen it."""
    checkout, origin, repo = setup
    commit_files(checkout, {"noxfile.py": NOXFILE}, "tests")
    git(checkout, "push", "-q", "origin", "HEAD:main")
    issue = repo.add_issue("Notes", CHECKED_ISSUE)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    [pull] = repo.pulls()
    [first] = repo.check_runs.values()
    assert first["conclusion"] == "success"

    step = comment_payload(repo, pull.number, "/tars-bot rollback --step 2")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", step) == 0
    assert "unvalidated since rollback of step 2" in pull.body
    runs = list(repo.check_runs.values())
    assert len(runs) == 2
    assert runs[-1]["head_sha"] == git(origin, "rev-parse", "tars-bot/issue-1")
    assert runs[-1]["conclusion"] == "neutral"
    assert "unvalidated since rollback of step 2" in runs[-1]["output"]["title"]


LINES = "".join(f"line {n}\n" for n in range(1, 11))

SHARED = """\
    title: one file, far apart
    steps:
      - {name: top, edit: {path: f.txt, search: "line 1\\n", replace: "LINE 1\\n"}}
      - {name: bottom, edit: {path: f.txt, search: "line 10", replace: "LINE 10"}}
      - {name: again, edit: {path: f.txt, search: "LINE 1\\n", replace: "LINE ONE\\n"}}
      - {name: other, write: {path: g.txt, content: "g\\n"}}
    """


def test_a_step_sharing_only_the_file_is_not_reverted_with_the_culprit(cli, make_repo):
    """Step 2 changes another line of step 1's file: step 1's revert applies without it."""
    text = SHARED.replace(
        '      - {name: again, edit: {path: f.txt, search: "LINE 1\\n", replace: "LINE ONE\\n"}}\n',
        "",
    )
    repo, execution_id = executed(cli, make_repo, text, {"f.txt": LINES})
    result = rollback(cli, repo, execution_id, "--step", "1")
    assert result.code == 0, result.err
    content = git(repo, "show", "tars-bot/imp:f.txt")
    assert content.startswith("line 1\n") and content.endswith("LINE 10")
    states = [s["state"] for s in status(cli, repo, execution_id)["steps"]]
    assert states == ["reverted", "applied", "applied"]


def test_cascade_takes_only_the_steps_the_revert_conflicts_with(cli, make_repo):
    repo, execution_id = executed(cli, make_repo, SHARED, {"f.txt": LINES})
    refused = rollback(cli, repo, execution_id, "--step", "1")
    assert refused.code == 2
    assert 'later steps build on it (3 "again")' in refused.err  # not 2: another line

    assert rollback(cli, repo, execution_id, "--step", "4").code == 0
    result = rollback(cli, repo, execution_id, "--step", "1", "--cascade")
    assert result.code == 0, result.err
    assert 'reverted step 3 "again"' in result.out and 'reverted step 1 "top"' in result.out
    assert "step 2" not in result.out and "step 4" not in result.out  # kept / reverted before
    states = [s["state"] for s in status(cli, repo, execution_id)["steps"]]
    assert states == ["reverted", "applied", "reverted", "reverted"]
    assert git(repo, "show", "tars-bot/imp:f.txt") == LINES.replace("line 10", "LINE 10").strip()


def test_drop_step_keeps_a_later_step_that_only_shares_the_file(cli, make_repo):
    """A final check breaks on line 1; the step changing line 10 of the same file stays."""
    noxfile = NOXFILE.replace(
        'session.run("python", "-c", "print(\'=== 1 passed in 0.01s ===\')")',
        'session.run("python", "-c", "import sys; sys.exit(\'BAD\' in open(\'f.txt\').read())")',
    )
    files = {
        "f.txt": LINES,
        "noxfile.py": noxfile,
        "pyproject.toml": '[tool.tars-bot]\nsandbox = "off"\n',
    }
    text = """\
        title: drop one
        on_failure: drop-step
        validation: {final: [tests]}
        steps:
          - {name: top, edit: {path: f.txt, search: "line 1\\n", replace: "BAD 1\\n"}}
          - {name: bottom, edit: {path: f.txt, search: "line 10", replace: "LINE 10"}}
        """
    repo, execution_id = executed(cli, make_repo, text, files)
    execution = status(cli, repo, execution_id)
    assert execution["state"] == "succeeded"
    assert [s["state"] for s in execution["steps"]] == ["reverted", "applied"]
    assert git(repo, "show", "tars-bot/imp:f.txt") == LINES.replace("line 10", "LINE 10").strip()


def git_in(repo: Path, stdin: str, *args: str) -> str:
    run = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, text=True, check=True, capture_output=True
    )
    return run.stdout.strip()


def stats(cli, repo: Path, *args: str):
    return cli("stats", "--repo", repo, *args)


def test_stats_count_a_rollback_after_success_as_a_success(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    assert rollback(cli, repo, execution_id).code == 0
    assert status(cli, repo, execution_id)["rolled_back_from"] == "succeeded"
    summary = json.loads(stats(cli, repo, "--format", "json").out)
    assert summary["by_state"] == {"succeeded": 1}
    assert summary["success_rate"] == 1.0 and summary["rolled_back_later"] == 1
    assert list(summary["weeks"].values()) == [{"succeeded": 1}]
    assert json.loads(stats(cli, repo, "--format", "json", "--rebuild").out) == summary
    text = " ".join(stats(cli, repo).out.split())
    assert "Rolled back later 1, after they succeeded (counted as succeeded)" in text


def test_an_index_made_by_an_older_tars_bot_is_rebuilt(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    assert rollback(cli, repo, execution_id).code == 0
    # the index as an older tars-bot left it: counted as a failure, without a format marker
    old = json.dumps({"executions": {"rolled_back": 1}})
    blob = git_in(repo, old, "hash-object", "-w", "--stdin")
    tree = git_in(repo, f"100644 blob {blob}\ttotals.json\n", "mktree")
    commit = git(repo, "commit-tree", tree, "-m", "old index")
    git(repo, "update-ref", "refs/tars-bot/stats", commit)
    summary = json.loads(stats(cli, repo, "--format", "json").out)
    assert summary["by_state"] == {"succeeded": 1} and summary["rolled_back_later"] == 1


def test_stats_say_what_a_culprit_search_cost_when_it_saved_nothing(cli, make_repo, tmp_path):
    """The first of four steps broke the check: bisecting took more runs than checking each."""
    repo, _ = make_validated_repo(make_repo, tmp_path)
    steps = "".join(
        f"  - {{name: s{n}, write: {{path: data/s{n}.txt, content: {'BAD' if n == 1 else 'ok'}}}}}\n"
        for n in range(1, 5)
    )
    add_improvement(repo, f"title: t\nvalidation: {{final: [tests]}}\nsteps:\n{steps}")
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    search = json.loads(stats(cli, repo, "--format", "json").out)["culprit_search"]
    assert search["runs"] > search["runs_checking_each_step"] == 1
    more = search["runs"] - 1
    text = " ".join(stats(cli, repo).out.split())
    assert f"would take 1: cost {more} more run" in text
    assert "saved -" not in text and "Saved" not in text


def test_drop_step_skips_a_step_that_declares_it_depends_on_the_dropped_one(cli, make_repo):
    repo = make_repo({"src/ok.py": "A = 1\n"})
    add_improvement(
        repo,
        textwrap.dedent(
            """\
            title: three
            on_failure: drop-step
            steps:
              - {name: broken, write: {path: src/b.py, content: "def (:\\n"}}
              - {name: uses it, write: {path: src/c.py, content: "C = 3\\n"}, depends_on: [broken]}
              - {name: other, write: {path: src/d.py, content: "D = 4\\n"}}
            """
        ),
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    steps = status(cli, repo, last_id(cli, repo))["steps"]
    assert [s["state"] for s in steps] == ["reverted", "skipped", "applied"]
    assert steps[1]["reason"] == "depends on dropped step 1"


def test_an_execution_whose_every_step_was_dropped_is_rolled_back(cli, make_repo):
    repo = make_repo({"src/ok.py": "A = 1\n"})
    add_improvement(
        repo,
        "title: t\non_failure: drop-step\n"
        'steps: [{name: broken, write: {path: src/b.py, content: "def (:\\n"}}]\n',
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    execution = status(cli, repo, last_id(cli, repo))
    assert execution["state"] == "rolled_back"
    assert execution["failure_reason"] == "every step was dropped (1)"
    assert git(repo, "branch", "--list", "tars-bot/*") == ""


def test_a_rollback_interrupted_before_the_whole_is_rolled_back_is_finished(cli, make_repo):
    """Killed between the last step's revert and the rollback of the whole: asking again
    finishes it (the step revert alone, through the library, leaves that state)."""
    repo, execution_id = executed(cli, make_repo)
    for step in ("1", "2"):
        assert rollback(cli, repo, execution_id, "--step", step).code == 0
    undo.rollback_steps(Repo(repo), execution_id, 3, cascade=False)
    assert status(cli, repo, execution_id)["state"] == "succeeded"
    again = rollback(cli, repo, execution_id, "--step", "3")
    assert again.code == 0, again.err
    assert "every step is reverted" in again.out
    assert status(cli, repo, execution_id)["state"] == "rolled_back"


def test_rolling_back_twice_on_github_is_a_no_op(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("Notes", CHECKED_ISSUE.replace("validation: {final: [tests]}\n", ""))
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0
    [pull] = repo.pulls()
    for _ in range(2):
        again = comment_payload(repo, pull.number, "/tars-bot rollback --step 2")
        assert run_action(fake_github, tmp_path, checkout, "issue_comment", again) == 0
    assert "| 2 | more | reverted |" in pull.body and pull.state == "open"
    reverts = git(origin, "log", "--format=%s", "tars-bot/issue-1").count("Revert step 2")
    assert reverts == 1
