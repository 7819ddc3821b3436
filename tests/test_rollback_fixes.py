"""Rollback and drop-step fixes: a per-step check failure drops the step, cascades revert only
what conflicts, rollbacks say what they did, are idempotent and mark the checks stale."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.helpers import add_improvement, git


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
