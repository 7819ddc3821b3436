"""What a process leaves in a pooled worktree never reaches the next checks: between executions
the slot is reset to exactly its commit's tree (or discarded), and between commits too.

A `probe` nox session fails when it finds any of the leftovers a hostile step or check can make
and git's own reset keeps: a nested repository, special files, locked directories, links out.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import BASE, add_improvement, commit_files, improvement, run_tars

PROBE = """\
import os
import sys

LEFTOVERS = [
    b"src/pkg/evil", b"src/pkg/linked", b"src/pkg/fifo", b"src/pkg/socket", b"src/pkg/locked",
    b"src/pkg/sealed", b"src/pkg/outside", b"build/evil", b"src/pkg/odd\\nname\\xff", b"src/deep",
]
found = [path for path in LEFTOVERS if os.path.lexists(path)]
try:
    import pkg.evil  # noqa: F401
    found.append(b"pkg.evil imports")
except ImportError:
    pass
sys.exit(f"left by an earlier process: {found}" if found else 0)
"""

NOXFILE = """\
import nox


@nox.session(venv_backend="none")
def probe(session):
    session.run("python", "probe.py", env={"PYTHONPATH": "src"})


@nox.session(venv_backend="none")
def plant(session):
    session.run("sh", "plant.sh")
"""

PLANTS = {
    "nested-repo": "git init -q src/pkg/evil && echo 'EVIL = 1' > src/pkg/evil/__init__.py",
    "git-file": "mkdir src/pkg/linked && echo 'gitdir: /nowhere' > src/pkg/linked/.git",
    "fifo": "mkfifo src/pkg/fifo",
    "socket": "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('src/pkg/socket')\"",
    "chmod-000": "mkdir src/pkg/locked && touch src/pkg/locked/x.py && chmod 000 src/pkg/locked",
    "chmod-555": "mkdir src/pkg/sealed && touch src/pkg/sealed/x.py && chmod 555 src/pkg/sealed src/pkg",
    "link-out": "ln -s / src/pkg/outside",
    "repo-in-ignored": "git init -q build/evil",
    "odd-name": "touch \"src/pkg/$(printf 'odd\\nname\\377')\"",
}


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {
            **BASE,
            ".gitignore": "build/\n",
            "noxfile.py": NOXFILE,
            "probe.py": PROBE,
        }
    )


def execute(repo: Path, name: str, text: str) -> dict:
    add_improvement(repo, text, f"{name}.yaml")
    proc = run_tars(repo, "execute", "--improvement-id", name)
    execution = json.loads(run_tars(repo, "history", "--format", "json").stdout)[0]
    log = run_tars(repo, "status", "--execution-id", execution["id"], "--log", "1").stdout
    return execution | {"returncode": proc.returncode, "output": proc.stdout + proc.stderr + log}


def probes(execution: dict) -> list[str]:
    return [c["status"] for s in execution["steps"] for c in s["checks"] if c["check"] == "probe"]


def checked_by_probe(repo: Path) -> dict:
    return execute(
        repo,
        "probed",
        improvement("echo 'B = 1' > src/pkg/b.py", "validation: {per_step: [probe]}"),
    )


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_failed_steps_leftovers_do_not_reach_the_next_executions_checks(repo, plant):
    planted = execute(repo, "planted", improvement(f"{plant}\nexit 1"))
    assert "command exited with code 1" in planted["failure_reason"], planted["output"]

    probed = checked_by_probe(repo)
    assert probed["returncode"] == 0, probed["output"]
    assert probes(probed) == ["passed"]


def test_a_refused_steps_nested_repository_does_not_reach_the_next_execution(repo):
    planted = execute(repo, "planted", improvement(f"{PLANTS['nested-repo']}\necho x >> README.md"))
    assert "outside its scope" in planted["failure_reason"], planted["output"]

    probed = checked_by_probe(repo)
    assert probed["returncode"] == 0, probed["output"]


@pytest.fixture
def deep_cleanup(repo):
    """Trees too deep for `shutil.rmtree` would defeat pytest's own cleanup of its temporary
    directories: they are deleted here, wherever they ended, whatever the test found."""
    yield
    own = repo / ".git" / "tars-bot"
    for top in [*own.glob("worktrees/*/src/deep"), *own.glob("trash/*/src/deep")]:
        remove_deep(top)


def test_a_slot_that_cannot_be_cleaned_is_made_afresh(repo, deep_cleanup):
    """A directory nested deeper than Python's recursion limit defeats `shutil.rmtree`: it is
    deleted with a loop, never left behind in the trash."""
    deep = "mkdir src/deep && cd src/deep && for i in $(seq 1100); do mkdir d && cd d; done"
    planted = execute(repo, "planted", improvement(f"{deep}\nexit 1"))
    assert "command exited with code 1" in planted["failure_reason"], planted["output"]

    probed = checked_by_probe(repo)
    assert probed["returncode"] == 0, probed["output"]
    assert not list((repo / ".git" / "tars-bot").glob("*/*/src/deep"))


def test_one_commits_checks_leave_nothing_for_the_next_commits(repo):
    """Checks run the tree's own code: what step 1's checks plant, step 2's must not see."""
    plants = [p for name, p in PLANTS.items() if name != "chmod-555"] + [PLANTS["chmod-555"]]
    commit_files(repo, {"plant.sh": "\n".join(plants) + "\n"}, "plant")
    text = """\
        title: two steps
        target_components: [core]
        validation: {per_step: [probe, plant]}
        steps:
          - name: one
            write: {path: src/pkg/one.py, content: "ONE = 1"}
          - name: two
            write: {path: src/pkg/two.py, content: "TWO = 2"}
        """
    execution = execute(repo, "two", textwrap.dedent(text))
    assert execution["returncode"] == 0, execution["output"]
    assert probes(execution) == ["passed", "passed"]


def remove_deep(top: Path) -> None:
    """Delete a chain of directories too deep for `shutil.rmtree`, deepest first."""
    chain = [top]
    while (chain[-1] / "d").is_dir():
        chain.append(chain[-1] / "d")
    for directory in reversed(chain):
        directory.rmdir()
