"""After the merge: an execution's state follows its change onto the default branch (merge commit,
squash, rebase), and its rollback becomes a revert on a branch of its own, checked against what
`git revert` itself makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import add_improvement, commit_files, git

NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "check.py")
"""
CHECK = """\
import pathlib, sys
sys.exit(1 if "BROKEN" in pathlib.Path("a.txt").read_text() else 0)
"""
FILES = {
    "noxfile.py": NOXFILE,
    "check.py": CHECK,
    "a.txt": "one\ntwo\nthree\nfour\nfive\nsix\nseven\n",
    "c.txt": "gamma\n",
}
IMPROVEMENT = """\
title: three steps
validation: {final: [tests]}
steps:
  - {name: A, edit: {path: a.txt, search: "two\\n", replace: "TWO\\n"}}
  - {name: B, write: {path: data/b.txt, content: "beta\\n"}}
  - {name: C, edit: {path: c.txt, search: gamma, replace: GAMMA}}
"""
BRANCH = "tars-bot/imp"


def execute(cli, repo: Path) -> str:
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    return status(cli, repo, None)["id"]


def status(cli, repo: Path, execution_id: str | None) -> dict:
    if execution_id is None:
        return json.loads(cli("history", "--repo", repo, "--format", "json", "--limit", "1").out)[0]
    result = cli("status", "--repo", repo, "--execution-id", execution_id, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def merge(repo: Path, kind: str) -> None:
    """Land tars-bot's branch on main as GitHub's three merge buttons do, after someone else's
    commit, and with more work on main after it."""
    commit_files(repo, {"other.txt": "someone else's work\n"}, "unrelated work")
    if kind == "merge":
        git(
            repo,
            "merge",
            "--no-ff",
            "-q",
            "-m",
            "Merge pull request #1 from octo/tars-bot/imp",
            BRANCH,
        )
    elif kind == "squash":
        messages = git(repo, "log", "--reverse", "--format=* %B", f"main..{BRANCH}")
        git(repo, "merge", "--squash", "-q", BRANCH)
        git(repo, "commit", "-q", "-m", f"three steps (#1)\n\n{messages}")
    else:  # rebase: the commits copied onto main, messages (and trailers) kept
        git(repo, "cherry-pick", "--allow-empty", f"main..{BRANCH}")
    commit_files(repo, {"a.txt": "one\nTWO\nthree\nfour\nfive\nsix\nSEVEN\n"}, "later work")


def git_revert_tree(repo: Path, tmp_path: Path, commits: list[str], mainline: bool) -> str:
    """The tree `git revert` makes of `commits` (in order) on main: the oracle."""
    clone = tmp_path / f"oracle-{len(list(tmp_path.glob('oracle-*')))}"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "revert", "--no-edit", *(["-m", "1"] if mainline else []), *commits)
    return git(clone, "rev-parse", "HEAD^{tree}")


def tars_commits(repo: Path, execution_id: str) -> dict[int, str]:
    """The commits on main carrying each step (the branch's own, or their rebased copies)."""
    found = {}
    for line in git(
        repo, "log", "--format=%H %(trailers:key=Tars-Step,valueonly,separator=)", "main"
    ).splitlines():
        commit, _, step = line.partition(" ")
        if step and git(repo, "log", "-1", "--format=%B", commit).count(execution_id) == 1:
            found.setdefault(int(step.partition("/")[0]), commit)
    return found


@pytest.fixture
def merged(cli, make_repo, request) -> tuple[Path, str, str]:
    repo = make_repo(FILES)
    add_improvement(repo, IMPROVEMENT)
    commit_files(repo, {".tars/improvements/imp.yaml": IMPROVEMENT}, "improvement")
    execution_id = execute(cli, repo)
    assert status(cli, repo, execution_id)["state"] == "succeeded"
    merge(repo, request.param)
    return repo, execution_id, request.param


@pytest.mark.parametrize("merged", ["merge", "squash", "rebase"], indirect=True)
def test_a_merged_execution_is_reverted_on_a_branch_of_its_own(cli, merged, tmp_path):
    repo, execution_id, kind = merged
    landed = status(cli, repo, execution_id)
    assert landed["state"] == "merged" and landed["landed"]["kind"] == kind
    main_before = git(repo, "rev-parse", "main")

    result = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert result.code == 0, result.err + result.out
    assert f"revert branch: tars-bot/revert-{execution_id}" in result.out
    assert git(repo, "rev-parse", "main") == main_before  # never on the default branch

    landing = landed["landed"]["commit"]
    if kind in ("merge", "squash"):
        expected = git_revert_tree(repo, tmp_path, [landing], mainline=kind == "merge")
    else:
        copies = tars_commits(repo, execution_id)
        expected = git_revert_tree(repo, tmp_path, [copies[n] for n in (3, 2, 1)], mainline=False)
    assert git(repo, "rev-parse", f"tars-bot/revert-{execution_id}^{{tree}}") == expected
    assert git(repo, "show", f"tars-bot/revert-{execution_id}:a.txt").endswith("SEVEN")  # kept

    after = status(cli, repo, execution_id)
    assert after["state"] == "reverted"
    revert = status(cli, repo, after["reverted_by"])
    assert revert["state"] == "succeeded" and revert["reverts"] == execution_id
    assert [c["check"] for c in revert["checks"]] == ["tests"]  # the original's final checks
    history = cli("history", "--repo", repo).out
    assert "reverted" in history

    again = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert again.code == 2 and "already reverted" in again.err


@pytest.mark.parametrize("merged", ["merge", "squash", "rebase"], indirect=True)
def test_one_step_of_a_merged_execution_is_reverted_alone(cli, merged, tmp_path):
    repo, execution_id, _ = merged
    result = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "2")
    assert result.code == 0, result.err + result.out
    branch = f"tars-bot/revert-{execution_id}-step-2"
    step_two = status(cli, repo, execution_id)["steps"][1]["commit"]
    assert git(repo, "rev-parse", f"{branch}^{{tree}}") == git_revert_tree(
        repo, tmp_path, [step_two], mainline=False
    )
    assert git(repo, "ls-tree", "--name-only", branch, "data/") == ""
    assert git(repo, "show", f"{branch}:a.txt") == git(repo, "show", "main:a.txt")
    assert status(cli, repo, execution_id)["state"] == "merged"  # one step: still merged


@pytest.mark.parametrize("merged", ["merge"], indirect=True)
def test_a_revert_that_conflicts_with_later_work_is_refused_and_makes_nothing(cli, merged):
    repo, execution_id, _ = merged
    commit_files(
        repo, {"a.txt": "one\nTWO (edited again)\nthree\nfour\nfive\nsix\nSEVEN\n"}, "edit"
    )
    before = git(repo, "for-each-ref", "--format=%(refname)")
    result = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert result.code == 2
    assert "the default branch changed the same lines since: a.txt" in result.err
    assert git(repo, "for-each-ref", "--format=%(refname)") == before  # no branch, no journal
    # the other steps do not touch a.txt: reverting one of them alone still works
    assert cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "3").code == 0


@pytest.mark.parametrize("merged", ["squash"], indirect=True)
def test_the_revert_can_itself_be_rolled_back(cli, merged):
    repo, execution_id, _ = merged
    assert cli("rollback", "--repo", repo, "--execution-id", execution_id).code == 0
    revert_id = status(cli, repo, execution_id)["reverted_by"]
    result = cli("rollback", "--repo", repo, "--execution-id", revert_id)
    assert result.code == 0, result.err
    assert git(repo, "branch", "--list", f"tars-bot/revert-{execution_id}") == ""
    assert status(cli, repo, execution_id)["state"] == "merged"  # no longer reverted


def test_an_unmerged_execution_still_rolls_back_by_deleting_its_branch(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, IMPROVEMENT)
    execution_id = execute(cli, repo)
    assert status(cli, repo, execution_id)["state"] == "succeeded"
    result = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert result.code == 0 and "branch tars-bot/imp deleted" in result.out
    pushed = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--open-pr")
    assert pushed.code == 2


def test_a_fast_forward_is_merged_too(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, IMPROVEMENT)
    execution_id = execute(cli, repo)
    git(repo, "merge", "--ff-only", "-q", BRANCH)
    assert status(cli, repo, execution_id)["landed"]["kind"] == "fast-forward"


@pytest.mark.parametrize("merged", ["rebase"], indirect=True)
def test_stats_count_a_merge_the_default_branch_shows(cli, merged):
    repo, execution_id, _ = merged
    result = cli("stats", "--repo", repo, "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["by_state"] == {"merged": 1}
    journaled = git(repo, "show", f"refs/tars-bot/executions/{execution_id}:execution.json")
    assert json.loads(journaled)["landed"]["kind"] == "rebase"
    # a merged execution is still rolled back by its revert
    assert cli("rollback", "--repo", repo, "--execution-id", execution_id).code == 0
    assert status(cli, repo, execution_id)["state"] == "reverted"
