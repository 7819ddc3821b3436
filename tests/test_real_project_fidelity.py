"""What real projects do that fixtures did not: non-default and parametrized nox sessions, strict
ruff configurations over packages, and checks slower than their limit."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import add_improvement, commit_files, git

NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def lint(session):
    pass

@nox.session(python=["3.11", "3.12"], default=False, tags=["slow"])
def tests(session):
    pass

@nox.session(venv_backend="none", default=False)
@nox.parametrize("flavour", ["a", "b"])
def docs(session, flavour):
    pass
"""


@pytest.mark.parametrize("check", ["tests-3.11", "tests", "tag:slow", "docs(flavour='b')", "lint"])
def test_every_session_plans_default_or_not(cli, make_repo, check):
    repo = make_repo({"noxfile.py": NOXFILE, "src/a.py": "A = 1\n"})
    text = f"title: t\nvalidation: {{final: [{json.dumps(check)}]}}\nsteps: [{{name: s, write: {{path: src/b.py, content: 'B = 1'}}}}]\n"
    add_improvement(repo, text)
    result = cli("plan", "--repo", repo, "--improvement-id", "imp", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["validation"]["final"] == [check]


def test_an_unknown_session_names_every_session(cli, make_repo):
    repo = make_repo({"noxfile.py": NOXFILE})
    add_improvement(
        repo,
        "title: t\nvalidation: {final: [tests-3.9]}\nsteps: [{name: s, write: {path: a, content: a}}]\n",
    )
    result = cli("plan", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 2
    assert "no nox session named 'tests-3.9'" in result.err
    assert "tests-3.11" in result.err and "docs(flavour='a')" in result.err


# nox's own noxfile: its Python versions come from pyproject.toml, read when the noxfile loads
READS_PYPROJECT = """\
import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")

@nox.session(python=nox.project.python_versions(PYPROJECT))
def tests(session):
    pass
"""


def test_a_noxfile_reading_pyproject_lists_its_sessions_and_sees_pyproject_change(cli, make_repo):
    pyproject = '[project]\nname = "p"\nclassifiers = ["Programming Language :: Python :: {}"]\n'
    repo = make_repo({"noxfile.py": READS_PYPROJECT, "pyproject.toml": pyproject.format("3.11")})
    text = "title: t\nvalidation: {final: [tests-3.12]}\nsteps: [{name: s, write: {path: b, content: b}}]\n"
    add_improvement(repo, text)
    result = cli("plan", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 2 and "no nox session named 'tests-3.12'" in result.err
    assert "tests-3.11" in result.err
    commit_files(repo, {"pyproject.toml": pyproject.format("3.12")})
    result = cli("plan", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err


STRICT = {
    "pyproject.toml": """\
        [project]
        name = "pkg"

        [tool.ruff]
        line-length = 100

        [tool.ruff.lint]
        select = ["ALL"]
        """,
    "src/pkg/__init__.py": '"""The package."""\n',
    # findings already on the base: no annotations, a magic number, print
    "src/pkg/utils.py": '"""Utilities."""\n\n\ndef double(x):\n    """Twice x."""\n    print(x)\n    return x * 2\n',
}


def execute(cli, repo: Path, step: str) -> dict:
    add_improvement(repo, f"title: t\ntarget_components: ['src/**']\nsteps: [{step}]\n")
    cli("execute", "--repo", repo, "--improvement-id", "imp")
    return json.loads(cli("history", "--repo", repo, "--format", "json").out)[0]


def test_an_edit_in_a_package_of_a_strict_project_passes_when_it_adds_no_finding(cli, make_repo):
    """INP001 and the base's own findings are not the step's: ruff runs in the worktree, where
    the package's __init__.py is, and only new findings count."""
    repo = make_repo(STRICT)
    step = '{name: doc, edit: {path: src/pkg/utils.py, search: "Twice x.", replace: "Return twice x."}}'
    execution = execute(cli, repo, step)
    assert execution["state"] == "succeeded", execution["failure_reason"]
    checks = {c["check"]: c["status"] for c in execution["steps"][0]["checks"]}
    assert checks == {"compile": "passed", "ruff check": "passed", "ruff format": "passed"}


def test_an_edit_that_adds_a_finding_fails_and_names_it(cli, make_repo):
    files = dict(STRICT)
    files["pyproject.toml"] += "\n[tool.tars-bot]\nheal = []\n"  # or ruff check --fix mends it
    repo = make_repo(files)
    step = '{name: unused, edit: {path: src/pkg/utils.py, search: "\\"\\"\\"Utilities.\\"\\"\\"\\n", replace: "\\"\\"\\"Utilities.\\"\\"\\"\\n\\nimport os\\n"}}'
    execution = execute(cli, repo, step)
    assert execution["state"] == "rolled_back"
    assert "ruff check failed (src/pkg/utils.py:" in execution["failure_reason"]
    assert "F401" in execution["failure_reason"]


def test_quick_checks_can_be_turned_off(cli, make_repo):
    files = dict(STRICT)
    files["pyproject.toml"] += "\n[tool.tars-bot]\nquick_checks = []\n"
    repo = make_repo(files)
    step = '{name: broken, write: {path: src/pkg/bad.py, content: "def f(:"}}'
    execution = execute(cli, repo, step)
    assert execution["state"] == "succeeded"
    assert execution["steps"][0]["checks"] == []


def test_a_check_slower_than_its_limit_is_not_blamed_on_a_step(cli, make_repo):
    noxfile = textwrap.dedent("""\
        import time
        import nox

        @nox.session(venv_backend="none")
        def slow(session):
            time.sleep(30)
        """)
    repo = make_repo({"noxfile.py": noxfile, "src/a.py": "A = 1\n"})
    commit_files(repo, {"pyproject.toml": "[tool.tars-bot]\ncheck_timeout = 2\n"}, "config")
    text = "title: t\non_failure: drop-step\nvalidation: {final: [slow]}\nsteps: [{name: s, write: {path: src/b.py, content: 'B = 1'}}]\n"
    add_improvement(repo, text)
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 1
    [execution] = json.loads(cli("history", "--repo", repo, "--format", "json").out)
    assert execution["state"] == "unvalidated"
    assert "timed out after 2s (check_timeout)" in execution["failure_reason"]
    assert execution["steps"][0]["state"] == "applied"  # no step blamed
    assert git(repo, "branch", "--list", "tars-bot/imp")  # kept for the user to decide
    assert git(repo, "for-each-ref", "refs/tars-bot/checks") == ""  # nothing cached


def test_a_finding_whose_message_names_a_line_is_still_the_bases_when_moved(cli, make_repo):
    """F811's message says "from line 7": lines added above it move it, it stays the same."""
    files = dict(STRICT)
    files["src/pkg/dup.py"] = '"""Dup."""\n\nimport os\nimport os\n\nprint(os.sep)\n'
    repo = make_repo(files)
    step = '{name: doc, edit: {path: src/pkg/dup.py, search: "\\"\\"\\"Dup.\\"\\"\\"", replace: "\\"\\"\\"Dup.\\n\\nTwo more lines.\\n\\"\\"\\""}}'
    execution = execute(cli, repo, step)
    assert execution["state"] == "succeeded", execution["failure_reason"]


def test_an_unreachable_package_index_is_not_a_test_failure(cli, make_repo):
    """The session cannot install its dependencies: the machine failed, not the tree."""
    noxfile = textwrap.dedent("""\
        import nox

        @nox.session
        def tests(session):
            session.install("--index-url", "http://127.0.0.1:9/simple", "--retries", "0", "six")
        """)
    repo = make_repo({"noxfile.py": noxfile, "src/a.py": "A = 1\n"})
    text = "title: t\nvalidation: {final: [tests]}\nsteps: [{name: s, write: {path: src/b.py, content: 'B = 1'}}]\n"
    add_improvement(repo, text)
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    [execution] = json.loads(cli("history", "--repo", repo, "--format", "json").out)
    assert execution["state"] == "unvalidated"
    assert "could not set up the session" in execution["failure_reason"]
    assert git(repo, "for-each-ref", "refs/tars-bot/checks") == ""
