"""The thin pygit2 layer. No other module imports pygit2; its errors become TarsError here."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pygit2

from tars_bot.errors import TarsError

EntryKind = Literal["file", "executable", "symlink", "dir", "submodule"]
_KINDS: dict[int, EntryKind] = {
    pygit2.GIT_FILEMODE_BLOB: "file",
    pygit2.GIT_FILEMODE_BLOB_EXECUTABLE: "executable",
    pygit2.GIT_FILEMODE_LINK: "symlink",
    pygit2.GIT_FILEMODE_TREE: "dir",
    pygit2.GIT_FILEMODE_COMMIT: "submodule",
}


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old: list[bytes]
    new: list[bytes]


@dataclass(frozen=True)
class FilePatch:
    old_path: str | None  # None: the patch creates the file
    new_path: str | None  # None: the patch deletes the file
    hunks: list[Hunk]
    binary: bool
    executable: bool


class RefConflict(TarsError):
    """A ref was not where the caller expected it: someone else moved it."""


class Repo:
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

    def resolve(self, ref: str) -> tuple[str, str]:
        """(commit id, tree id) of `ref`, which may be any revision git understands."""
        try:
            commit = self._repo.revparse_single(ref).peel(pygit2.Commit)
        except (KeyError, ValueError):  # not found, or not a commit; corruption is not user error
            if ref == "HEAD" and self._repo.head_is_unborn:
                raise TarsError("HEAD: the repository has no commits yet") from None
            raise TarsError(f"base: no commit named {ref!r}") from None
        return str(commit.id), str(commit.tree_id)

    def _entry(self, tree_id: str, path: str) -> pygit2.Object | None:
        try:
            return self._repo[tree_id] / path  # type: ignore[operator]
        except KeyError:
            return None

    def kind(self, tree_id: str, path: str) -> EntryKind | None:
        entry = self._entry(tree_id, path)
        return None if entry is None else _KINDS.get(entry.filemode)

    def read(self, tree_id: str, path: str) -> bytes | None:
        entry = self._entry(tree_id, path)
        if entry is None or entry.type != pygit2.GIT_OBJECT_BLOB:
            return None
        return entry.data  # type: ignore[attr-defined]

    def blob_id(self, tree_id: str, path: str) -> str | None:
        entry = self._entry(tree_id, path)
        return None if entry is None else str(entry.id)

    def hash_file(self, path: Path) -> str:
        return str(pygit2.hashfile(str(path)))

    def ref(self, name: str) -> str | None:
        ref = self._repo.references.get(name)
        return None if ref is None else str(ref.target)

    def refs(self, prefix: str) -> dict[str, str]:
        return {
            r.name: str(r.target)
            for r in self._repo.references.iterator()
            if r.name.startswith(prefix) and r.type == pygit2.enums.ReferenceType.DIRECT
        }

    def create_ref(self, name: str, target: str) -> bool:
        """Create `name` atomically; False if it already exists."""
        try:
            self._repo.references.create(name, target, force=False)
        except pygit2.AlreadyExistsError:
            return False
        return True

    def update_ref(self, name: str, new: str | None, expected: str | None) -> None:
        """Compare-and-swap: set (or, with new=None, delete) `name` only if it is at `expected`."""
        try:
            with self._repo.transaction() as txn:
                txn.lock_ref(name)
                current = self.ref(name)
                if current != expected:
                    raise RefConflict(f"{name} is at {current}, expected {expected}")
                if new is None:
                    txn.remove(name)
                else:
                    txn.set_target(name, new, message="tars-bot")
        except pygit2.GitError as e:
            raise RefConflict(f"{name}: {e}") from None

    def write_snapshot(self, files: dict[str, bytes], parents: list[str], message: str) -> str:
        """A commit whose tree holds `files` (nested paths allowed), not on any branch."""
        index = pygit2.Index()
        for path, data in files.items():
            blob = self._repo.create_blob(data)
            index.add(pygit2.IndexEntry(path, blob, pygit2.GIT_FILEMODE_BLOB))
        tree = index.write_tree(self._repo)
        author = signature(self._repo)
        return str(self._repo.create_commit(None, author, author, message, tree, parents))

    def commit_file(self, commit: str, path: str) -> bytes | None:
        return self.read(str(self._repo[commit].peel(pygit2.Commit).tree_id), path)  # type: ignore[attr-defined]

    def add_worktree(self, name: str, path: Path, branch: str | None, base: str) -> Worktree:
        """Check out `base` at `path`, on new branch `branch`, or detached when branch is None."""
        ref_name = f"refs/heads/{branch or 'tars-bot-detached/' + name}"
        if not self.create_ref(ref_name, base):
            raise TarsError(f"branch {branch} already exists; delete it or roll its execution back")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._repo.add_worktree(name, str(path), self._repo.references[ref_name])
        except pygit2.GitError:
            self.update_ref(ref_name, None, base)
            raise
        worktree = Worktree(path)
        if branch is None:
            worktree._repo.set_head(pygit2.Oid(hex=base))
            self.update_ref(ref_name, None, base)
        return worktree

    def remove_worktree(self, name: str, path: Path) -> None:
        """Delete the worktree's files and git's record of it; missing parts are fine."""
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(KeyError, pygit2.GitError):
            self._repo.lookup_worktree(name).prune(True)

    def worktree_names(self) -> list[str]:
        return list(self._repo.list_worktrees())

    def diff(self, old: str, new: str) -> str:
        """`git diff old new` as text (commits or trees)."""
        return self._repo.diff(self._repo[old], self._repo[new]).patch or ""  # type: ignore[return-value]

    def commits_between(self, base: str, tip: str) -> list[str]:
        """Commits reachable from tip but not base, oldest first."""
        walker = self._repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=base))
        return [str(c.id) for c in walker][::-1]

    def message(self, commit: str) -> str:
        return self._repo[commit].peel(pygit2.Commit).message  # type: ignore[attr-defined]


class Worktree:
    """A checkout made for one execution. Every change here is tars-bot's own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repo = pygit2.Repository(str(path))

    def head(self) -> str:
        return str(self._repo.head.target)

    def changed_paths(self) -> list[str]:
        """Paths that differ from HEAD, untracked ones included; ignored files are not changes."""
        return sorted(self._repo.status(untracked_files="all", ignored=False))

    def stage(self, paths: list[str]) -> tuple[str, int] | None:
        """Stage `paths` as they are on disk: (tree id, changed lines), or None if no change."""
        index = self._repo.index
        index.read()
        for path in paths:
            if os.path.lexists(self.path / path):
                index.add(path)
            else:
                index.remove_all([path])
        index.write()
        tree = index.write_tree()
        head_tree = self._repo.head.peel(pygit2.Commit).tree
        if tree == head_tree.id:
            return None
        stats = self._repo.diff(head_tree, self._repo[tree]).stats
        return str(tree), stats.insertions + stats.deletions

    def commit(self, tree: str, message: str) -> str:
        author = signature(self._repo)
        parent = self._repo.head.target
        return str(self._repo.create_commit("HEAD", author, author, message, tree, [parent]))


FALLBACK_IDENTITY = ("tars-bot", "tars-bot@users.noreply.github.com")


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """The configured git identity, or tars-bot's own when git has none."""
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature(*FALLBACK_IDENTITY)


def create_repository(path: Path, files: dict[str, str], message: str) -> str:
    """A new repository at `path` whose first commit holds `files`; returns the commit id."""
    repo = pygit2.init_repository(str(path), initial_head="main")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    repo.index.add_all()
    repo.index.write()
    author = signature(repo)
    tree = repo.index.write_tree()
    return str(repo.create_commit("HEAD", author, author, message, tree, []))


def is_valid_branch_name(name: str) -> bool:
    return pygit2.reference_is_valid_name(f"refs/heads/{name}")


def _path(diff_file: pygit2.DiffFile) -> str:
    return diff_file.raw_path.decode("utf-8", "surrogateescape")


def parse_diff(text: str) -> list[FilePatch]:
    """Parse a git-style diff (with `diff --git` headers) into plain records."""
    try:
        diff = pygit2.Diff.parse_diff(text)
    except (pygit2.GitError, KeyError) as e:
        raise TarsError(f"not a valid diff: {e}") from None
    return [_file_patch(patch) for patch in diff]


def _file_patch(patch: pygit2.Patch) -> FilePatch:
    delta = patch.delta
    hunks = []
    for hunk in patch.hunks:
        old: list[bytes] = []
        new: list[bytes] = []
        last = " "
        for line in hunk.lines:
            if line.origin in "=<>":  # "\ No newline at end of file" after the line it belongs to
                if last in " -":
                    old[-1] = old[-1].removesuffix(b"\n")
                if last in " +":
                    new[-1] = new[-1].removesuffix(b"\n")
                continue
            if line.origin in " -":
                old.append(line.raw_content)
            if line.origin in " +":
                new.append(line.raw_content)
            last = line.origin
        hunks.append(Hunk(hunk.old_start, old, new))
    return FilePatch(
        old_path=None if delta.status == pygit2.GIT_DELTA_ADDED else _path(delta.old_file),
        new_path=None if delta.status == pygit2.GIT_DELTA_DELETED else _path(delta.new_file),
        hunks=hunks,
        binary=delta.is_binary,
        executable=delta.new_file.mode == pygit2.GIT_FILEMODE_BLOB_EXECUTABLE,
    )
