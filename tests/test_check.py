"""`tars-bot check`: light enough for a pre-commit hook (no process, no sandbox), every problem
of every file, and the static reading of noxfiles it relies on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from tars_bot.planning.noxfile import declared_sessions
from tests.helpers import add_improvement

ROOT = Path(__file__).parent.parent
SCHEMAS = ROOT / "docs" / "schemas"

# -- declared_sessions: noxfiles as real projects write them ---------------------------------------


def _declared(source: str) -> list[str] | None:
    return declared_sessions(textwrap.dedent(source))


def test_plain_decorators_in_order() -> None:
    assert _declared(
        """
        import nox

        @nox.session
        def lint(session: nox.Session) -> None:
            session.run("ruff", "check")

        @nox.session(python="3.11", reuse_venv=True)
        def tests(session):
            session.install("-e", ".")
        """
    ) == ["lint", "tests"]


def test_name_alias_and_imported_decorator() -> None:
    assert _declared(
        """
        import nox as n
        from nox import session

        @n.session(name="type-check", tags=["static"])
        def mypy(session):
            pass

        @session(py=["3.10", "3.11"])
        def tests(session):
            session.run("pytest")
        """
    ) == ["type-check", "tests"]


def test_parametrized_python_gives_base_names() -> None:
    assert _declared(
        """
        import nox

        PYTHONS = ["3.10", "3.11", "3.12"]

        @nox.session(python=PYTHONS)
        @nox.parametrize("django", ["4.2", "5.0"])
        def tests(session, django):
            session.install(f"django=={django}")
        """
    ) == ["tests"]


def test_session_applied_as_a_call() -> None:
    assert _declared(
        """
        import nox

        def _docs(session):
            pass

        nox.session(_docs, name="docs")
        nox.session(name="build")(_docs)
        """
    ) == ["docs", "build"]


@pytest.mark.parametrize(
    "source",
    [
        # sessions made in a loop
        """
        import nox
        for version in ["3.10", "3.11"]:
            @nox.session(name=f"tests-{version}")
            def tests(session):
                pass
        """,
        # a computed name
        """
        import nox
        import os
        @nox.session(name=os.environ["SESSION"])
        def tests(session):
            pass
        """,
        # exec
        """
        import nox
        exec("@nox.session\\ndef tests(session): pass")
        """,
        # a decorator kept under another name
        """
        import nox
        py311 = nox.session(python="3.11")
        @py311
        def tests(session):
            pass
        """,
        # sessions from another module
        """
        from tasks.sessions import *
        """,
        # made inside a function
        """
        from nox import session
        def make(name):
            session(lambda s: None, name=name)
        make("tests")
        """,
        "def broken(:\n",
    ],
    ids=["loop", "computed-name", "exec", "stored-decorator", "star-import", "factory", "syntax"],
)
def test_what_only_running_tells_gives_none(source: str) -> None:
    assert _declared(source) is None


def test_session_argument_named_like_the_decorator_is_not_dynamic() -> None:
    assert _declared(
        """
        from nox import session

        @session
        def tests(session):
            session.install(".")
            session.run("pytest", *session.posargs)
        """
    ) == ["tests"]


# -- tars-bot check: through the command line, on real repositories ---------------------------------

STATIC_NOXFILE = """\
import nox

@nox.session(venv_backend="none", tags=["fast"])
def lint(session):
    session.run("python", "-c", "pass")
"""

# sessions made in a loop: only running nox tells their names
DYNAMIC_NOXFILE = """\
import nox

for name in ["lint", "tests"]:
    nox.session(lambda session: None, name=name, venv_backend="none")
"""


def _repo(make_repo, noxfile: str, pyproject: str = "") -> Path:
    return make_repo(
        {
            "noxfile.py": noxfile,
            "pyproject.toml": f"[tool.tars-bot]\n{pyproject}",
            "src/a.py": "VALUE = 1\n",
        }
    )


def _improvement(repo: Path, validation: str, steps: str, name: str = "imp.yaml") -> Path:
    return add_improvement(repo, f"title: t\nvalidation: {validation}\nsteps:\n{steps}", name)


EDIT_A = "  - {name: e, edit: {path: src/a.py, search: 'VALUE = 1', replace: 'VALUE = 2'}}\n"


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine where bubblewrap cannot run (macOS, a container, a hosted hook runner)."""
    monkeypatch.setenv("TARS_BOT_BWRAP", str(tmp_path / "no-bwrap"))


def test_check_reads_sessions_statically_where_no_sandbox_can_run(cli, make_repo, no_sandbox):
    repo = _repo(make_repo, STATIC_NOXFILE)
    good = _improvement(repo, "{per_step: [lint, 'tag:fast']}", EDIT_A)
    result = cli("check", "--repo", repo, "--verbose", good)
    assert (result.code, result.err) == (0, "")
    assert "imp.yaml: ok (sessions read from noxfile.py statically)" in result.out
    bad = _improvement(repo, "{final: [tests]}", EDIT_A, "bad.yaml")
    result = cli("check", "--repo", repo, bad)
    assert result.code == 1
    assert (
        "bad.yaml: validation.final[1]: no nox session named 'tests' in noxfile.py "
        "(sessions: lint)" in result.err
    )


def test_dynamic_noxfile_without_sandbox_leaves_sessions_unchecked(cli, make_repo, no_sandbox):
    repo = _repo(make_repo, DYNAMIC_NOXFILE)
    path = _improvement(repo, "{final: [anything]}", EDIT_A)
    result = cli("check", "--repo", repo, path)
    assert result.code == 0
    assert "note: .tars/improvements/imp.yaml: session names not checked: noxfile.py makes" in (
        result.err
    )
    document = json.loads(cli("check", "--repo", repo, "--format", "json", path).out)
    assert document["files"][0]["sessions"] == "not checked"


def test_dynamic_noxfile_is_listed_by_nox_where_it_can_run(cli, make_repo):
    repo = _repo(make_repo, DYNAMIC_NOXFILE, 'sandbox = "off"\n')
    good = _improvement(repo, "{final: [tests]}", EDIT_A)
    result = cli("check", "--repo", repo, "--verbose", good)
    assert result.code == 0, result.err
    assert "imp.yaml: ok (sessions listed by nox)" in result.out
    bad = _improvement(repo, "{final: [docs]}", EDIT_A, "bad.yaml")
    result = cli("check", "--repo", repo, bad)
    assert result.code == 1
    assert "validation.final[1]: no nox session named 'docs'" in result.err


def test_check_reports_every_problem_of_a_file_counted_from_1(cli, make_repo, no_sandbox):
    repo = _repo(make_repo, STATIC_NOXFILE)
    steps = (
        EDIT_A
        + "  - {name: w, write: {path: docs/x.md, content: x}, scope: ['src/**']}\n"
        + "  - {name: f, edit: {path: src/a.py, search: 'nowhere', replace: 'x'}}\n"
    )
    path = _improvement(repo, "{final: [lint, docs]}", steps)
    result = cli("check", "--repo", repo, path)
    assert result.code == 1
    assert result.err.splitlines() == [
        ".tars/improvements/imp.yaml: steps[2].write: docs/x.md is outside the step's scope "
        "(src/**)",
        ".tars/improvements/imp.yaml: steps[3].edit.search: text not found in src/a.py",
        ".tars/improvements/imp.yaml: validation.final[2]: no nox session named 'docs' in "
        "noxfile.py (sessions: lint)",
    ]


def test_check_json_conforms_to_its_schema(cli, make_repo, no_sandbox):
    repo = _repo(make_repo, STATIC_NOXFILE)
    good = _improvement(repo, "{final: [lint]}", EDIT_A)
    bad = add_improvement(repo, "title: t\nsteps: [{name: s}]\n", "bad.yaml")
    result = cli("check", "--repo", repo, "--format", "json", good, bad)
    assert result.code == 1
    document = json.loads(result.out)
    schema = json.loads((SCHEMAS / "check.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["format"] == "tars-bot.check/1"
    ok, failed = document["files"]
    assert (ok["ok"], ok["sessions"], ok["problems"]) == (
        True,
        "read from noxfile.py statically",
        [],
    )
    assert failed["ok"] is False
    assert failed["problems"] == [
        ".tars/improvements/bad.yaml: steps[1]: a step needs exactly one action (run, patch, "
        "edit, write or delete); found none"
    ]


def test_hook_checks_only_the_configured_improvements_dir(cli, make_repo, no_sandbox):
    repo = _repo(make_repo, STATIC_NOXFILE, 'improvements_dir = "plans/tars"\n')
    inside = repo / "plans" / "tars" / "bad.yaml"
    inside.parent.mkdir(parents=True)
    inside.write_text(
        "title: t\nsteps: [{name: s, edit: {path: nope.py, search: a, replace: b}}]\n"
    )
    outside = repo / ".github" / "dependabot.yml"
    outside.parent.mkdir()
    outside.write_text("version: 2\nupdates: []\n")
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    assert all(
        re.search(hook["files"], f) for f in ("plans/tars/bad.yaml", ".github/dependabot.yml")
    )
    assert hook["entry"] == "tars-bot check --hook"

    result = cli("check", "--repo", repo, "--hook", "--verbose", inside, outside)
    assert result.code == 1
    assert result.err == "plans/tars/bad.yaml: steps[1].edit.path: nope.py does not exist\n"
    assert "skipped 1 file(s) outside the improvements dir" in result.out
    assert cli("check", "--repo", repo, "--hook", outside).code == 0
    # named explicitly without --hook, any file is an improvement file
    assert (
        "dependabot.yml: title: required field is missing"
        in cli("check", "--repo", repo, outside).err
    )


def test_a_broken_configuration_is_one_readable_error(cli, make_repo):
    repo = _repo(make_repo, STATIC_NOXFILE, "improvements_dir = 3\n")
    result = cli("check", "--repo", repo, "--hook", repo / "x.yaml")
    assert result.code == 2
    assert "[tool.tars-bot].improvements_dir" in result.err and "Traceback" not in result.err


# -- start-up: what `--version` and `check` import --------------------------------------------------

HEAVY = ("github", "griffe", "rich", "nox")


def _imported_after(argv: list[str], cwd: Path) -> set[str]:
    """The top-level modules imported by `tars-bot ARGV` in a fresh interpreter."""
    code = (
        "import sys; from tars_bot.cli import main; main(sys.argv[1:]); "
        "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(proc.stdout.split())


def test_version_imports_nothing_heavy(tmp_path):
    imported = _imported_after(["--version"], tmp_path)
    assert "tars_bot" in imported
    assert not imported & {*HEAVY, "pydantic", "pygit2", "yaml"}


def test_check_imports_neither_github_nor_rich_nor_nox(make_repo, no_sandbox):
    repo = _repo(make_repo, STATIC_NOXFILE)
    path = _improvement(repo, "{final: [lint]}", EDIT_A)
    imported = _imported_after(["check", str(path)], repo)
    assert "pygit2" in imported  # it did check against HEAD
    assert not imported & set(HEAVY)
