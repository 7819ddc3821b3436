"""The repository's worktrees: made (with git's own checkout), found, removed and pruned."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

import pygit2

from tars_bot.git.core import RepoCore
from tars_bot.git.worktree import Worktree, discard


class Worktrees(RepoCore):
    def add_worktree(self, path: Path, ref: str | None, commit: str) -> Worktree:
        """Check out existing branch `ref` at `path`, or `commit` detached when ref is None.
        The worktree is named after the last part of `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # git, not libgit2: git's checkout is about 4x faster on large trees (1.9 s vs 7.4 s
        # for 20,000 files, benchmarks/run.py), and checkout is an execution's costliest part.
        # Hooks are off: the user's post-checkout hook must not run in tars-bot's worktree.
        # `git worktree add` reads every worktree's record, and fails on one another process is
        # writing: records are made one at a time (a short lock), the files checked out after.
        target = (
            [str(path), ref.removeprefix("refs/heads/")] if ref else ["--detach", str(path), commit]
        )
        with self._worktree_records():
            self._git("worktree", "add", "--quiet", "--no-checkout", *target)
        self._git("-C", str(path), "reset", "--hard", "--quiet")
        return Worktree(path)

    def open_worktree(self, path: Path) -> Worktree | None:
        """A worktree made earlier, or None when it is gone or broken."""
        try:
            return Worktree(path)
        except (pygit2.GitError, OSError):
            return None

    def remove_worktree(self, name: str, path: Path) -> None:
        """Delete the worktree's files (whatever a process did to them: what cannot be deleted
        is moved to the trash) and git's record of it; missing parts are fine."""
        discard(path, self.git_dir / "tars-bot" / "trash")  # emptied by workspace.sweep
        with self._worktree_records():
            with contextlib.suppress(KeyError, pygit2.GitError):
                self._repo.lookup_worktree(name).prune(True)
            # a worktree killed half-made may leave git's record without the files to prune by
            shutil.rmtree(self.git_dir / "worktrees" / name, ignore_errors=True)

    def checked_out_at(self, ref: str) -> Path | None:
        """Where one of the user's worktrees (not tars-bot's) has branch `ref` checked out."""
        common = self.git_dir
        if (common / "commondir").is_file():  # opened from a linked worktree
            common = (common / (common / "commondir").read_text().strip()).resolve()
        heads = [(common / "HEAD", common.parent)]
        for admin in (common / "worktrees").glob("*"):
            if (admin / "gitdir").is_file():
                checkout = Path((admin / "gitdir").read_text().strip()).parent
                heads.append((admin / "HEAD", checkout))
        for head, checkout in heads:
            mine = checkout.resolve().is_relative_to((common / "tars-bot").resolve())
            if not mine and head.is_file() and head.read_text().strip() == f"ref: {ref}":
                return checkout
        return None

    def worktree_names(self) -> list[str]:
        return list(self._repo.list_worktrees())

    def prune_worktrees(self) -> list[str]:
        """Forget worktrees whose directories are gone (`git worktree prune`)."""
        pruned = []
        for name in self._repo.list_worktrees():
            worktree = self._repo.lookup_worktree(name)
            if worktree.is_prunable:
                worktree.prune(True)
                pruned.append(name)
        return pruned

    @contextlib.contextmanager
    def _worktree_records(self) -> Iterator[None]:
        """Serialize changes to git's worktree records across processes (released on death)."""
        lock_file = self.git_dir / "tars-bot" / "worktrees.lock"
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        with lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
