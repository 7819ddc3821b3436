"""A squash merge whose message was rewritten is found by patch identity, without GitHub."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tars_bot.rollback import landing
from tests.helpers import add_improvement, commit_files, git

FILES = {"a.txt": "alpha\n", "b.txt": "beta\n", "other.txt": "other\n"}
STEPS = """\
    title: two files
    steps:
      - {name: A, edit: {path: a.txt, search: alpha, replace: ALPHA}}
      - {name: B, edit: {path: b.txt, search: beta, replace: BETA}}
    """


def executed(cli, make_repo) -> tuple[Path, str]:
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "improvement")
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    history = json.loads(cli("history", "--repo", repo, "--format", "json", "--limit", "1").out)
    return repo, history[0]["id"]


def status(cli, repo: Path, execution_id: str) -> dict:
    result = cli("status", "--repo", repo, "--execution-id", execution_id, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_a_squash_with_its_own_message_is_seen_as_merged(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    commit_files(repo, {"other.txt": "changed meanwhile\n"}, "unrelated work")
    git(repo, "merge", "--squash", "-q", "tars-bot/imp")
    git(repo, "commit", "-qm", "Uppercase the greetings (#12)")  # no trailer, no step message
    squash = git(repo, "rev-parse", "HEAD")
    commit_files(repo, {"other.txt": "and after\n"}, "later work")

    execution = status(cli, repo, execution_id)
    assert execution["state"] == "merged"
    assert execution["landed"]["kind"] == "squash"
    assert execution["landed"]["commit"] == squash
    assert execution["landed"]["found_by"] == "git"


def test_a_different_change_is_not_taken_for_the_squash(cli, make_repo):
    repo, execution_id = executed(cli, make_repo)
    commit_files(repo, {"a.txt": "ALPHA\n"}, "only half of it")
    assert status(cli, repo, execution_id)["state"] == "succeeded"


def test_the_scan_is_bounded(cli, make_repo, monkeypatch):
    repo, execution_id = executed(cli, make_repo)
    git(repo, "merge", "--squash", "-q", "tars-bot/imp")
    git(repo, "commit", "-qm", "rewritten")
    for n in range(3):
        commit_files(repo, {"other.txt": f"{n}\n"}, f"later {n}")
    monkeypatch.setattr(landing, "PATCH_SCAN_LIMIT", 2)  # a bound, not our function
    assert status(cli, repo, execution_id)["state"] == "succeeded"
