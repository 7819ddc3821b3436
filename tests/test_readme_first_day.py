"""A new user's first day, as the README writes it: the commands of "In ten minutes", run as
written by a shell in a clone of a repository, then the first pull request from the user's
machine, against the GitHub double and a bare `origin`. If the README's commands change, this
test runs the new ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import git

README = Path(__file__).parent.parent / "README.md"
NOXFILE = """\
import nox


@nox.session(venv_backend="none")
def lint(session):
    session.run("python", "-c", "pass")


@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "print('=== 3 passed in 0.01s ===')")
"""
# what a README command cannot do in a test: install from GitHub, or enter "your-repository"
NOT_HERE = ("pip install", "cd your-repository")


def first_day_commands() -> list[str]:
    """The shell lines of the README's "In ten minutes" block, comments dropped."""
    section = README.read_text().split("### In ten minutes", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's In ten minutes section has no sh block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith(NOT_HERE)]


def first_pull_request_command() -> str:
    """The README's command for a first pull request from the user's machine."""
    section = README.read_text().split("from your machine with a token:", 1)[1]
    command = re.search(r"`([^`]*)`", section, re.S)
    assert command, "the README gives no command for a first pull request from a machine"
    return " ".join(command.group(1).split())


def shell(line: str, cwd: Path, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(extra or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # tars-bot, installed
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_readme_first_day_works_as_written(setup, fake_github):
    checkout, origin, repo = setup
    (checkout / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1.0"\n')
    (checkout / "noxfile.py").write_text(NOXFILE)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "A project with nox sessions")
    git(checkout, "push", "-q", "origin", "HEAD:main")

    commands = first_day_commands()
    assert any(c.startswith("tars-bot init") for c in commands)
    for line in commands:
        done = shell(line, checkout)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    assert "docs/tars-bot.md" in done.stdout  # the dry run shows the example's diff
    assert git(checkout, "status", "--porcelain") == ""  # committed as the README says

    command = first_pull_request_command()
    assert command.startswith("GITHUB_TOKEN=... GITHUB_REPOSITORY=owner/repo tars-bot execute")
    command = command.replace("GITHUB_TOKEN=...", f"GITHUB_TOKEN={fake_github.token}")
    command = command.replace("owner/repo", "octo/app")
    git(checkout, "push", "-q", "origin", "HEAD:main")  # "push the commit"
    done = shell(command, checkout, {"GITHUB_API_URL": fake_github.url})
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert "pull request: " in done.stdout
    [pull] = repo.pulls()
    assert (pull.head_ref, pull.base_ref) == ("tars-bot/example", "main")
    assert "tars-bot" in git(origin, "show", "tars-bot/example:docs/tars-bot.md")
