from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tars_bot.cli import main

pytest_plugins = ["tests.fake_github", "tests.fake_checks"]  # a GitHub REST API on loopback


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    """No test reads or writes the real home, cache or git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "test@example.com")
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))


def commit_files(repo: Path, files: dict[str, str], message: str = "change") -> str:
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def leftover_worktrees(repo: Path) -> list[str]:
    """Worktrees other than the main one and the idle pool (detached, no slot held)."""
    entries = git(repo, "worktree", "list", "--porcelain").split("\n\n")[1:]
    held = git(repo, "for-each-ref", "--format=%(refname)", "refs/tars-bot/pool")
    return [
        entry
        for entry in entries
        if "/.git/tars-bot/worktrees/pool-" not in entry or "detached" not in entry or held
    ]


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """A real git repository with one commit holding `files` (dedented)."""

    def make(files: dict[str, str] | None = None, name: str = "repo") -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit_files(repo, files or {"README.md": "# sample\n"}, "initial")
        return repo

    return make


def start_tars(repo: Path, *args: str, fault: str | None = None) -> subprocess.Popen[str]:
    """`tars-bot ARGS` as a real process in `repo` (TARS_BOT_FAULT set only when given)."""
    env = {k: v for k, v in os.environ.items() if k != "TARS_BOT_FAULT"}
    if fault:
        env["TARS_BOT_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "tars_bot", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_tars(repo: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = start_tars(repo, *args, fault=fault)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_until(reached: Callable[[], object], proc: subprocess.Popen[str]) -> None:
    """Poll until a running tars-bot process reaches a point the test can observe."""
    deadline = time.monotonic() + 30
    while not reached():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `tars-bot ARGS` in-process and capture its exit code and output."""

    def run(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
