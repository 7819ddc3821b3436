"""The quick checks run the project's ruff where it has one installed, else tars-bot's own, and
say which (its version and where it came from) in the check's detail."""

from __future__ import annotations

import json
import re
import subprocess
import sysconfig
from pathlib import Path

from tests.helpers import add_improvement, history

OWN = str(Path(sysconfig.get_path("scripts")) / "ruff")
OWN_VERSION = re.findall(r"ruff (\S+)", subprocess.check_output([OWN, "--version"], text=True))[0]
PYPROJECT = "[tool.ruff]\nline-length = 100\n\n[tool.tars-bot]\nheal = []\n"
STEP = 'title: t\nsteps: [{name: tidy, write: {path: b.py, content: "x = 1\\n"}}]\n'


def pre_commit(rev: str) -> str:
    return (
        "repos:\n  - repo: https://github.com/astral-sh/ruff-pre-commit\n"
        f"    rev: v{rev}\n    hooks: [{{id: ruff}}, {{id: ruff-format}}]\n"
    )


def ruff_details(cli, repo: Path, improvement: str = "imp") -> list[str]:
    result = cli("execute", "--repo", repo, "--improvement-id", improvement)
    assert result.code == 0, result.err + result.out
    [step] = history(cli, repo)[0]["steps"]
    checks = {c["check"]: c for c in step["checks"]}
    return [checks[name]["summary"] for name in ("ruff check", "ruff format")]


def test_without_a_pin_tars_bots_own_ruff_runs_and_is_named(cli, make_repo):
    repo = make_repo({"pyproject.toml": PYPROJECT, "a.py": "x = 1\n"})
    add_improvement(repo, STEP)
    assert ruff_details(cli, repo) == [f"ran tars-bot's own ruff {OWN_VERSION}"] * 2


def test_a_pin_that_is_not_installed_is_said_and_falls_back(cli, make_repo):
    files = {"pyproject.toml": PYPROJECT, ".pre-commit-config.yaml": pre_commit("0.0.1")}
    repo = make_repo(files)
    add_improvement(repo, STEP)
    check, _ = ruff_details(cli, repo)
    assert check == (
        f"ran tars-bot's own ruff {OWN_VERSION}: ruff 0.0.1, pinned in .pre-commit-config.yaml, "
        "is not installed in any nox environment tars-bot built"
    )


def test_a_pin_of_tars_bots_version_is_honoured(cli, make_repo):
    files = {"pyproject.toml": PYPROJECT, ".pre-commit-config.yaml": pre_commit(OWN_VERSION)}
    repo = make_repo(files)
    add_improvement(repo, STEP)
    check, _ = ruff_details(cli, repo)
    assert check == f"ran ruff {OWN_VERSION}, as pinned in .pre-commit-config.yaml (tars-bot's own)"


# the project's lint session installs its ruff into its environment (here: a copy of a ruff
# binary at hand, as `session.install("ruff==X")` would without a network)
LINT_NOXFILE = """\
import nox

@nox.session(venv_backend="venv")
def lint(session):
    copy = "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])"
    session.run_install("python", "-c", copy, {ruff!r}, session.bin + "/ruff")
    session.run("ruff", "--version")
"""


def test_the_ruff_of_the_projects_lint_environment_runs(cli, make_repo):
    files = {"pyproject.toml": PYPROJECT, "noxfile.py": LINT_NOXFILE.format(ruff=OWN)}
    repo = make_repo(files)
    # a first execution builds the base's environments (tars-bot, with --install-only)
    add_improvement(
        repo,
        "title: t\nvalidation: {final: [lint]}\nsteps: [{name: n, write: {path: N.md, content: n}}]\n",
        "first.yaml",
    )
    first = cli("execute", "--repo", repo, "--improvement-id", "first")
    assert first.code == 0, first.err + first.out
    add_improvement(repo, STEP)
    check, fmt = ruff_details(cli, repo)
    assert check == fmt == f"ran ruff {OWN_VERSION} from nox session lint's env"
    details = json.dumps(history(cli, repo)[0]["steps"][0]["checks"])
    assert "tars-bot's own" not in details
