"""A worktree tars-bot made, seen from inside: status, index, HEAD."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import pygit2

from tars_bot.errors import TarsError


class Unclean(TarsError):
    """A worktree that could not be made exactly its commit's tree: never to be used again."""


class Worktree:
    """A checkout made for one execution. Every change here is tars-bot's own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repo = pygit2.Repository(str(path))

    def changed_paths(self) -> tuple[list[str], list[str]]:
        """(changed, ignored): paths that differ from the index (whose content tars-bot keeps
        and whose stat data includes ctime, which no process can set back), untracked ones
        included; and ignored paths, which are not changes."""
        changed: list[str] = []
        ignored: list[str] = []
        for path, flags in self._repo.status(untracked_files="all", ignored=True).items():
            (ignored if flags & pygit2.enums.FileStatus.IGNORED else changed).append(path)
        return sorted(changed), sorted(ignored)

    def remove(self, paths: list[str]) -> None:
        """Delete these files or directories (ignored ones a process left) from the worktree."""
        for path in paths:
            target = self.path / path
            if target.is_dir() and not target.is_symlink():
                with contextlib.suppress(OSError, RecursionError):
                    remove_tree(target)
            else:
                target.unlink(missing_ok=True)

    def move_to(self, commit: str) -> None:
        """Make the worktree exactly `commit`'s tree (see `reset_to`), detached, so one
        commit's checks see nothing another's steps or checks left. HEAD stays where it is
        when it is at `commit` already (on the execution's branch)."""
        target = self._repo[commit].peel(pygit2.Commit)
        self._make_exact(target, None if self._repo.head.target == target.id else target.id)

    def reset_to(self, commit: str, branch_ref: str | None) -> None:
        """Make a used worktree exactly `commit`'s tree, HEAD on `branch_ref` or detached."""
        target = self._repo[commit].peel(pygit2.Commit)
        self._make_exact(target, branch_ref or target.id)

    def _make_exact(self, target: pygit2.Commit, head: str | pygit2.Oid | None) -> None:
        """Remove what the target's tree does not hold (untracked and ignored files, nested
        repositories, special files), check the tree out over the rest if git sees it differ
        (only files that differ are rewritten), and put HEAD on `head` (None: where it is).
        Raises Unclean unless git then sees nothing changed, untracked or ignored: such a
        worktree must be discarded."""
        _scrub(self.path, target.tree)
        if self._repo.head.peel(pygit2.Tree).id != target.tree_id or self._left():
            strategy = pygit2.enums.CheckoutStrategy
            clean = strategy.FORCE | strategy.REMOVE_UNTRACKED | strategy.REMOVE_IGNORED
            try:
                # pygit2's stubs leave checkout_tree untyped
                self._repo.checkout_tree(target.tree, strategy=clean)  # type: ignore[no-untyped-call]
            except pygit2.GitError as e:
                raise Unclean(f"{self.path}: cannot check out {target.id}: {e}") from None
            if head is not None:
                self._repo.set_head(head)
            if left := self._left():
                named = ", ".join(sorted(left)[:5])
                raise Unclean(f"{self.path}: differs from {target.id} after its reset: {named}")
        elif head is not None:
            self._repo.set_head(head)

    def _left(self) -> dict[str, int]:
        """What git sees differ from HEAD: changed, untracked or ignored paths."""
        try:
            return self._repo.status(untracked_files="all", ignored=True)
        except pygit2.GitError as e:
            raise Unclean(f"{self.path}: no status: {e}") from None

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


def _scrub(root: Path, tree: pygit2.Tree) -> None:
    """Remove from the worktree at `root` all that `tree` does not hold as it holds it, so the
    checkout that follows leaves exactly the tree. Nothing is read and no link followed:
    directory entries are matched to the tree's by name and kind (a link where the tree has
    a file, or the reverse, the checkout replaces); directories locked against their owner
    are opened first. The worktree's own `.git` file stays."""
    pending: list[tuple[Path, dict[str, pygit2.Object]]] = [(root, _children(tree))]
    while pending:
        directory, children = pending.pop()
        for entry in _listing(directory):
            child = children.get(entry.name)
            kind = child.type if child is not None else None
            if isinstance(child, pygit2.Tree) and entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), _children(child)))
            elif kind == _SUBMODULE and entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), {}))  # never checked out: empty
            elif kind == _BLOB and (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                continue
            elif directory == root and entry.name == ".git":
                if not entry.is_file(follow_symlinks=False):
                    raise Unclean(f"{root}: its .git is no longer git's link file")
            else:
                _remove(entry)


_BLOB, _SUBMODULE = pygit2.enums.ObjectType.BLOB, pygit2.enums.ObjectType.COMMIT


def _children(tree: pygit2.Tree) -> dict[str, pygit2.Object]:
    """A tree's entries by name, as the file system spells it (bytes that are not UTF-8
    included)."""
    return {os.fsdecode(entry.raw_name or b""): entry for entry in tree}


def _listing(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of a directory of the tree, which a process may have locked (chmod 000)."""
    try:
        mode = directory.lstat().st_mode
        if mode & 0o700 != 0o700:
            directory.chmod(mode | 0o700)
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as e:
        raise Unclean(f"cannot list {directory}: {e}") from None


def _remove(entry: os.DirEntry[str]) -> None:
    try:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(Path(entry.path))
        else:
            Path(entry.path).unlink()  # a file, link, FIFO, socket or device node alike
    except (OSError, RecursionError) as e:
        raise Unclean(f"cannot remove {entry.path}: {e!r}") from None


def remove_tree(top: Path) -> None:
    """Delete a directory and all under it, whatever a process did to their permissions or
    however deep it nested them."""
    try:
        shutil.rmtree(top)
        return
    except PermissionError:
        _open_up(top)
    except RecursionError:  # deeper than shutil.rmtree's recursion can go
        pass
    _remove_deep(top)


def _remove_deep(top: Path) -> None:
    """Delete `top` with a loop: every entry listed parents first, then removed deepest first."""
    directories, pending = [], [top]
    while pending:
        directory = pending.pop()
        directories.append(directory)
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                else:
                    Path(entry.path).unlink()
    for directory in reversed(directories):
        directory.rmdir()


def _open_up(top: Path) -> None:
    """Give the owner full access to every directory under `top` (a loop, not recursion: a
    process may nest directories deeper than Python's recursion limit)."""
    pending = [top]
    while pending:
        directory = pending.pop()
        with contextlib.suppress(OSError):
            directory.chmod(0o700)
            with os.scandir(directory) as entries:
                pending += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]


def discard(path: Path, trash: Path) -> None:
    """Delete a worktree's files; what cannot be deleted (a tree nested too deep for
    `shutil.rmtree`) is moved into `trash`, so a fresh worktree can take its place."""
    if not os.path.lexists(path):
        return
    try:
        remove_tree(path)
    except OSError:
        trash.mkdir(parents=True, exist_ok=True)
        path.rename(trash / f"{path.name}-{uuid.uuid4().hex}")
