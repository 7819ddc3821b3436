"""A worktree tars-bot made, seen from inside: status, index, HEAD."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pygit2


class Worktree:
    """A checkout made for one execution. Every change here is tars-bot's own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repo = pygit2.Repository(str(path))

    def changed_paths(self) -> tuple[list[str], list[str]]:
        """(changed, ignored): paths that differ from the index (whose content tars-bot keeps
        and whose stat data includes ctime, which no process can set back), untracked ones
        included; and ignored paths, which are not changes."""
        changed, ignored = [], []
        for path, flags in self._repo.status(untracked_files="all", ignored=True).items():
            (ignored if flags & pygit2.enums.FileStatus.IGNORED else changed).append(path)
        return sorted(changed), sorted(ignored)

    def remove(self, paths: list[str]) -> None:
        """Delete these files or directories (ignored ones a process left) from the worktree."""
        for path in paths:
            target = self.path / path
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)

    def move_to(self, commit: str) -> None:
        """Check out `commit`, detached; only files that differ are rewritten."""
        if str(self._repo.head.target) == commit:
            return
        strategy = pygit2.enums.CheckoutStrategy
        target = self._repo[commit].peel(pygit2.Commit)
        self._repo.checkout_tree(target.tree, strategy=strategy.FORCE | strategy.REMOVE_UNTRACKED)
        self._repo.set_head(target.id)

    def reset_to(self, commit: str, branch_ref: str | None) -> None:
        """Make a used worktree a clean checkout of `commit`: files that differ are rewritten,
        untracked and ignored files removed; HEAD on `branch_ref`, or detached."""
        strategy = pygit2.enums.CheckoutStrategy
        target = self._repo[commit].peel(pygit2.Commit)
        clean = strategy.FORCE | strategy.REMOVE_UNTRACKED | strategy.REMOVE_IGNORED
        self._repo.checkout_tree(target.tree, strategy=clean)
        if branch_ref:
            self._repo.set_head(branch_ref)
        else:
            self._repo.set_head(target.id)

    def detach(self) -> None:
        """Leave the branch (so git lets users check it out or delete it)."""
        if not self._repo.head_is_detached and not self._repo.head_is_unborn:
            self._repo.set_head(self._repo.head.target)

    def moved_to(self, commit: str, paths: list[str], detached: bool) -> None:
        """Record that `commit` now holds the worktree's changes to `paths`."""
        index = self._repo.index
        index.read()
        for path in paths:
            if os.path.lexists(self.path / path):
                index.add(path)
            else:
                index.remove_all([path])
        index.write()
        if detached:
            self._repo.set_head(pygit2.Oid(hex=commit))
