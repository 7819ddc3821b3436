"""Split privilege: `execute --bundle` in a job without a write token, `receive` in one with it.
The receiving side believes nothing in the bundle it cannot check against its own plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import clone, commit_files, commit_on, git, pushed, receive, run_tars, tampered

FILES = {
    "pyproject.toml": '[tool.tars-bot]\ncomponents = { core = ["src/**"] }\n',
    "src/app.py": "VALUE = 1\n",
    "README.md": "# app\n",
}
NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "import pathlib, sys; sys.exit(pathlib.Path('src/extra.py').exists())")
"""
IMPROVEMENT = """\
title: Two steps
target_components: [core]
steps:
  - {name: edit, edit: {path: src/app.py, search: "VALUE = 1", replace: "VALUE = 2"}}
  - {name: generate, run: "echo 'EXTRA = 3' > src/extra.py"}
"""


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    dropping = IMPROVEMENT + "on_failure: drop-step\nvalidation: {final: [tests]}\n"
    files = {**FILES, "noxfile.py": NOXFILE, ".tars/improvements/imp.yaml": IMPROVEMENT}
    commit_files(seed, {**files, ".tars/improvements/drop.yaml": dropping}, "initial")
    git(seed, "push", "-q", "origin", "main")
    return origin


def executed(origin: Path) -> tuple[Path, str]:
    """A runner clone that executed the improvement: (the runner, the execution id)."""
    runner = clone(origin, "runner")
    proc = run_tars(runner, "execute", "--improvement-id", "imp", "--bundle", "../good.bundle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [execution_id] = [
        line.rsplit("/", 1)[1]
        for line in git(
            runner, "for-each-ref", "--format=%(refname)", "refs/tars-bot/executions"
        ).splitlines()
    ]
    return runner, execution_id


def test_a_bundle_from_a_job_without_a_token_is_checked_and_pushed(origin):
    runner, execution_id = executed(origin)
    proc = receive(origin, origin.parent / "good.bundle", "--push")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"checked: execution {execution_id}, branch tars-bot/imp" in proc.stdout
    assert git(origin, "rev-parse", "tars-bot/imp") == git(runner, "rev-parse", "tars-bot/imp")
    assert f"refs/tars-bot/executions/{execution_id}" in pushed(origin)
    assert "refs/tars-bot/incoming" not in pushed(origin)


@pytest.mark.parametrize(
    ("case", "refused"),
    [
        ("outside scope", "step 2 changed README.md, outside its scope"),
        ("protected path", "step 2 changed .github/workflows/ci.yml, a protected path"),
        ("foreign commit", "was not made by tars-bot for execution"),
        ("extra ref", "expected one branch and its journal"),
    ],
)
def test_a_tampered_bundle_is_refused_and_nothing_is_pushed(origin, case, refused):
    runner, execution_id = executed(origin)
    step_1, step_2 = git(runner, "rev-list", "--reverse", "origin/main..tars-bot/imp").split()
    message = git(runner, "log", "-1", "--format=%B", step_2)
    extra: tuple[str, ...] = ()
    if case == "outside scope":
        tip = commit_on(
            runner, step_1, {"src/extra.py": "EXTRA = 3\n", "README.md": "pwned\n"}, message
        )
    elif case == "protected path":
        tip = commit_on(runner, step_1, {".github/workflows/ci.yml": "on: push\n"}, message)
    elif case == "foreign commit":
        tip = commit_on(runner, step_2, {"src/app.py": "import os\n"}, "just one more thing")
    else:
        tip = step_2
        git(runner, "update-ref", "refs/heads/sneaky", commit_on(runner, step_2, {"x": "x"}, "x"))
        extra = ("refs/heads/sneaky",)
    bundle = tampered(runner, execution_id, tip, case.replace(" ", "-"), *extra)
    proc = receive(origin, bundle, "--push")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert refused in proc.stderr
    assert "Traceback" not in proc.stderr
    assert pushed(origin) == ""


def test_a_bundle_planned_on_a_base_off_the_default_branch_is_refused(origin):
    runner = clone(origin, "runner")
    commit_files(runner, {"src/app.py": "VALUE = 1\nOTHER = 0\n"}, "not on main")
    git(runner, "push", "-q", "origin", "HEAD:refs/heads/side")
    proc = run_tars(runner, "execute", "--improvement-id", "imp", "--bundle", "../side.bundle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    refused = receive(origin, origin.parent / "side.bundle", "--push")
    assert refused.returncode == 2
    assert "is not on the default branch" in refused.stderr
    assert pushed(origin) == ""


def test_a_dropped_step_and_its_revert_pass_the_check(origin):
    runner = clone(origin, "runner")
    proc = run_tars(runner, "execute", "--improvement-id", "drop", "--bundle", "../drop.bundle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "was dropped" in proc.stdout
    publisher = clone(origin, "publisher")
    bundle = str(origin.parent / "drop.bundle")
    received = run_tars(publisher, "receive", "--bundle", bundle, "--improvement-id", "drop")
    assert received.returncode == 0, received.stdout + received.stderr
    assert git(publisher, "rev-parse", "tars-bot/drop") == git(runner, "rev-parse", "tars-bot/drop")
