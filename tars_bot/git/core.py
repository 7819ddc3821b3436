"""What every part of `Repo` shares: the pygit2 repository, its paths, typed lookups of its
objects, and tars-bot's own `git` command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import cast

import pygit2

from tars_bot.errors import TarsError

_GIT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "XDG_CONFIG_HOME")


class RepoCore:
    """A repository opened from any directory inside its working tree."""

    def __init__(self, path: Path | str = ".") -> None:
        found = pygit2.discover_repository(str(path))
        if found is None:
            raise TarsError(f"{path}: not inside a git repository")
        self._repo = pygit2.Repository(found)
        if self._repo.is_bare:
            raise TarsError(f"{path}: is a bare repository; tars-bot needs a working tree")

    @property
    def workdir(self) -> Path:
        return Path(self._repo.workdir)

    @property
    def git_dir(self) -> Path:
        return Path(self._repo.path)

    def has_object(self, oid: str) -> bool:
        return oid in self._repo

    def _tree(self, oid: str | pygit2.Oid) -> pygit2.Tree:
        return cast(pygit2.Tree, self._repo[oid])  # callers pass ids they know name trees

    def _blob_data(self, oid: str | pygit2.Oid) -> bytes:
        return cast(pygit2.Blob, self._repo[oid]).data

    def _commit(self, rev: str) -> pygit2.Commit:
        return self._repo[rev].peel(pygit2.Commit)

    def _git(self, *args: str) -> str:
        # Nothing the repository's config names runs here (hooks, fsmonitor), and git gets no
        # secrets: only what it needs from the environment.
        safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
        env = {k: v for k, v in os.environ.items() if k in _GIT_ENV or k.startswith("GIT_CONFIG")}
        proc = subprocess.run(
            ["git", *safe, *args], cwd=self.workdir, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise TarsError(f"git {' '.join(args[:3])}: {proc.stderr.strip()}")
        return proc.stdout
