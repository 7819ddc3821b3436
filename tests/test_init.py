"""`tars-bot init` on real repositories: what it writes, that it is idempotent and never replaces
a file unasked, and `init --check` reporting every problem of a set-up at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tars_bot.config import config_at
from tars_bot.git import Repo
from tests.helpers import commit_files, git

NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def lint(session):
    session.run("python", "-c", "pass")

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "pass")

@nox.session(venv_backend="none")
def docs(session):
    session.run("python", "-c", "pass")
"""
CI = """\
name: Build and test
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: "true"
"""
WRITTEN = ("pyproject.toml", ".tars/improvements/example.yaml", ".github/workflows/tars-bot.yml")


@pytest.fixture
def project(make_repo) -> Path:
    """A repository with a pyproject (no tars-bot table), a noxfile and one CI workflow."""
    return make_repo(
        {
            "pyproject.toml": '[project]\nname = "pkg"\nversion = "1.0"\n',
            "noxfile.py": NOXFILE,
            ".github/workflows/build.yml": CI,
            "pkg/__init__.py": "",
        }
    )


def _state(repo: Path) -> tuple[str, str, str]:
    """HEAD, the index's tree and every branch: what init must never move."""
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "write-tree"),
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
    )


def test_init_writes_a_setup_that_loads_plans_and_stays_put(project, cli):
    before = _state(project)
    result = cli("init", "--repo", project, "--action-ref", "someone/tars-bot@v9")
    assert result.code == 0, result.err
    assert _state(project) == before  # only the working tree changed
    assert "added [tool.tars-bot] to: pyproject.toml" in result.out
    settings = result.out.index("Allow GitHub Actions to create and approve pull requests")
    assert settings < result.out.index("tars-bot plan --improvement-id example")
    workflow = yaml.safe_load((project / WRITTEN[2]).read_text())
    assert workflow[True]["workflow_run"]["workflows"] == ["Build and test"]
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses.count("someone/tars-bot@v9") == 3
    written = {name: (project / name).read_bytes() for name in WRITTEN}

    commit_files(project, {}, "Set up tars-bot")
    config = config_at(Repo(project))
    assert (config.validation.per_step, config.validation.final) == (["lint"], ["tests"])
    example = project / WRITTEN[1]
    assert cli("check", "--repo", project, example).code == 0
    plan = cli("plan", "--repo", project, "--improvement-id", "example", "--format", "json")
    assert plan.code == 0, plan.err
    assert json.loads(plan.out)["steps"][0]["files"] == ["docs/tars-bot.md"]

    again = cli("init", "--repo", project, "--action-ref", "someone/tars-bot@v9")
    assert again.code == 0, again.err
    assert "nothing to change" in again.out
    assert {name: (project / name).read_bytes() for name in WRITTEN} == written
    assert git(project, "status", "--porcelain") == ""


def test_init_refuses_to_replace_a_file_that_differs(project, cli):
    workflow = project / WRITTEN[2]
    workflow.write_text("name: tars-bot\n# mine\n")
    result = cli("init", "--repo", project)
    assert result.code == 2
    assert ".github/workflows/tars-bot.yml: exists and differs" in result.err
    assert "--force" in result.err
    assert workflow.read_text() == "name: tars-bot\n# mine\n"
    assert not (project / WRITTEN[1]).exists()  # nothing written when anything is refused

    forced = cli("init", "--repo", project, "--force")
    assert forced.code == 0, forced.err
    assert "replaced: .github/workflows/tars-bot.yml" in forced.out
    assert "uses: tars-bot/tars-bot@v0.1.0" in workflow.read_text()


def test_init_keeps_an_existing_table_and_honours_improvements_dir(make_repo, cli):
    table = '[tool.tars-bot]\nimprovements_dir = "plans"\n'
    repo = make_repo({"pyproject.toml": table})
    result = cli("init", "--repo", repo, "--format", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["format"] == 1
    assert [(f["path"], f["action"]) for f in document["files"]] == [
        ("pyproject.toml", "kept"),
        ("plans/example.yaml", "created"),
        (".github/workflows/tars-bot.yml", "created"),
    ]
    assert document["sessions"]["found"] == []  # no noxfile
    assert (repo / "pyproject.toml").read_text() == table
    assert 'paths: ["plans/**"]' in (repo / WRITTEN[2]).read_text()
    written = yaml.safe_load((repo / WRITTEN[2]).read_text())
    assert "workflow_run" not in written[True]  # no other workflow: nothing to watch yet
    assert '  #   workflows: ["CI"]' in (repo / WRITTEN[2]).read_text()  # left to uncomment
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Set up tars-bot")
    assert cli("init", "--repo", repo, "--check").code == 0


def test_init_writes_nothing_outside_the_working_tree(make_repo, tmp_path, cli):
    repo = make_repo({"pyproject.toml": '[tool.tars-bot]\nimprovements_dir = "../elsewhere"\n'})
    result = cli("init", "--repo", repo)
    assert result.code == 2
    assert "../elsewhere/example.yaml: a symbolic link, or outside the working tree" in result.err
    assert not (tmp_path / "elsewhere").exists()
    assert not (repo / WRITTEN[2]).exists()


def test_init_refuses_a_reference_github_would_refuse(project, cli):
    result = cli("init", "--repo", project, "--action-ref", "$/")
    assert result.code == 2
    assert "--action-ref: '$/'" in result.err
    assert git(project, "status", "--porcelain") == ""


def test_init_check_passes_on_a_good_setup(project, cli):
    assert cli("init", "--repo", project).code == 0
    result = cli("init", "--check", "--repo", project)
    assert result.code == 0, result.err
    assert result.out.startswith("ok: ")
    assert "1 improvement file(s)" in result.out


def test_init_check_reports_every_problem_at_once(project, cli):
    assert cli("init", "--repo", project).code == 0
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('final = ["tests"]', 'final = ["test"]'))
    workflow = project / WRITTEN[2]
    text = workflow.read_text().replace('["Build and test"]', '["Build"]')
    workflow.write_text(text.replace("uses: tars-bot/tars-bot@v0.1.0", "uses: $/", 1))
    (project / ".tars/improvements/broken.yaml").write_text("title: x\nsteps: [{name: a}]\n")
    before = {
        p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts
    }

    result = cli("init", "--check", "--repo", project)
    assert result.code == 2
    problems = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(problems) == 4, result.err
    assert "nox session 'test' is not in noxfile.py (sessions: docs, lint, tests)" in result.err
    assert "jobs.authorize.steps[2].uses: '$/'" in result.err
    assert "broken.yaml: steps[1]" in result.err
    assert "no workflow is named 'Build' (workflows: Build and test)" in result.err
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before  # --check writes nothing

    as_json = json.loads(cli("init", "--check", "--repo", project, "--format", "json").out)
    assert as_json["format"] == 1 and not as_json["ok"] and len(as_json["problems"]) == 4


HOOKS_NOXFILE = """\
import nox

@nox.session(reuse_venv=True)
def lint(session):
    session.install("pre-commit")
    session.run("pre-commit", "run", "--all-files", *session.posargs)

@nox.session(name="typing")
def mypy(session):
    session.run("mypy", "src")

@nox.session
def tests(session):
    session.run("pytest")
"""


def test_init_does_not_check_each_step_with_a_session_that_runs_pre_commit(make_repo, cli):
    # pre-commit clones its hooks from GitHub as it runs: in the sandbox every step would fail
    repo = make_repo({"pyproject.toml": '[project]\nname = "p"\n', "noxfile.py": HOOKS_NOXFILE})
    result = cli("init", "--repo", repo, "--format", "json")
    assert result.code == 0, result.err
    sessions = json.loads(result.out)["sessions"]
    assert (sessions["per_step"], sessions["final"]) == (["typing"], ["tests"])
    assert "pre-commit" in sessions["passed_over"]["lint"]
    table = (repo / "pyproject.toml").read_text()
    assert "# not per_step: lint runs pre-commit" in table
    assert 'validation = { per_step = ["typing"], final = ["tests"] }' in table
    (repo / "pyproject.toml").write_text('[project]\nname = "p"\n')
    said = cli("init", "--repo", repo, "--force")
    assert "not run on each step: nox session 'lint' runs pre-commit" in said.out


COMPUTED_NOXFILE = """\
import nox

PYTHONS = [f"3.{minor}" for minor in range(9, 15)]


@nox.session(python=PYTHONS)
def tests(session):
    session.run("pytest")


@nox.session(python=["3.13t", "pypy-3.11"], default=False)
def conda_tests(session):  # a CI matrix's variant: not what checks a result here
    session.run("pytest")


@nox.session(python="3.12")
def lint(session):
    session.install("prek")
    session.run("prek", "run", "--all-files")
"""


def test_init_asks_nox_where_only_running_the_noxfile_tells(make_repo, cli):
    """`python=` computed (as with nox.project.python_versions): nox lists the sessions in the
    sandbox, and the tests run on the python tars-bot runs on."""
    repo = make_repo({"pyproject.toml": '[project]\nname = "p"\n', "noxfile.py": COMPUTED_NOXFILE})
    result = cli("init", "--repo", repo, "--format", "json")
    assert result.code == 0, result.err
    sessions = json.loads(result.out)["sessions"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (sessions["per_step"], sessions["final"]) == ([], [f"tests-{python}"])
    assert "prek" in sessions["passed_over"]["lint"]

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Set up tars-bot")
    checked = cli("init", "--repo", repo, "--check")
    assert checked.code == 0, checked.err
    assert "sessions, listed by nox)" in checked.out
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f"tests-{python}", "tests-2.7"))
    wrong = cli("init", "--repo", repo, "--check")
    assert wrong.code == 2 and "tests-2.7" in wrong.err
