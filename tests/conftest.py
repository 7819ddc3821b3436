from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tars_bot.cli import main
from tests.helpers import Result, commit_files, git

pytest_plugins = [
    "tests.fake_github",
    "tests.fake_checks",
    "tests.fake_merges",
]  # a GitHub REST API on loopback


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


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `tars-bot ARGS` in-process and capture its exit code and output."""

    def run(*args: str | Path) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def setup(tmp_path, fake_github):
    """A bare `origin` with one commit, the job's checkout of it, and its repository on the fake
    GitHub with a writer and a reader: (checkout, origin, repo)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    (seed / "src").mkdir()
    (seed / "src" / "io.py").write_text("def load(path):\n    return open(path).read()\n")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "initial")
    git(seed, "push", "-q", "origin", "HEAD:main")
    checkout = tmp_path / "checkout"  # what actions/checkout leaves for the job
    git(tmp_path, "clone", "-q", str(origin), str(checkout))
    repo = fake_github.add_repo("octo/app", clone_url=str(origin))
    repo.add_collaborator("writer", "write")
    repo.add_collaborator("reader", "read")
    return checkout, origin, repo
