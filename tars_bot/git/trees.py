"""Trees and blobs: reading paths, building trees from changes, diffs, exporting files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias, cast

import pygit2

from tars_bot.git.core import RepoCore
from tars_bot.git.diff import diff_file_path
from tars_bot.git.objects import KINDS, MODES, EntryKind, NewContent

# changes as a tree of directories: a name maps to a file's new content or to a directory
_Nested: TypeAlias = dict[str, "NewContent | _Nested"]


class Trees(RepoCore):
    def _entry(self, tree_id: str, path: str) -> pygit2.Object | None:
        try:
            return self._tree(tree_id) / path
        except KeyError:
            return None

    def kind(self, tree_id: str, path: str) -> EntryKind | None:
        entry = self._entry(tree_id, path)
        return None if entry is None else KINDS.get(entry.filemode)

    def read(self, tree_id: str, path: str) -> bytes | None:
        entry = self._entry(tree_id, path)
        if entry is None or entry.type != pygit2.GIT_OBJECT_BLOB:
            return None
        return cast(pygit2.Blob, entry).data

    def blob(self, oid: str) -> bytes:
        return self._blob_data(oid)

    def blob_id(self, tree_id: str, path: str) -> str | None:
        entry = self._entry(tree_id, path)
        return None if entry is None else str(entry.id)

    def newest_blobs(self, tree: str, directory: str, limit: int | None) -> Iterator[bytes]:
        """The blobs two levels below `directory` (shards of entries), last names first, the
        newest when names sort by time. Only the shards needed are read."""
        top = self._entry(tree, directory)
        if top is None:
            return
        shards = self._tree(top.id)
        count = 0
        for i in range(len(shards) - 1, -1, -1):
            shard = self._tree(shards[i].id)
            for j in range(len(shard) - 1, -1, -1):
                if limit is not None and count >= limit:
                    return
                yield self._blob_data(shard[j].id)
                count += 1

    def commit_file(self, commit: str, path: str) -> bytes | None:
        return self.read(str(self._commit(commit).tree_id), path)

    def file_at(self, commit: str, path: str) -> bytes | None:
        """As `commit_file`, but None also when `commit` names no commit (a damaged ref)."""
        try:
            return self.commit_file(commit, path)
        except (pygit2.GitError, KeyError, ValueError):
            return None

    def uncommitted(self, paths: list[str], commit: str) -> list[str]:
        """Those of `paths` (relative to the root) whose file in the working tree differs from
        the one `commit` holds, a missing file on either side included. Only these paths are
        read, and nothing is written: the user's checkout stays as it is."""
        tree = self._tree(self.tree_of(commit))
        found = []
        for path in dict.fromkeys(paths):
            on_disk = self.workdir / path
            try:
                committed: str | None = str(tree[path].id)
            except KeyError:
                committed = None
            if on_disk.is_symlink():
                current: str | None = str(pygit2.hash(os.fsencode(on_disk.readlink())))
            elif on_disk.is_file():
                current = str(pygit2.hashfile(str(on_disk)))
            else:
                current = None
            if current != committed:
                found.append(path)
        return found

    def tree_of(self, commit: str) -> str:
        """The tree of `commit` (a tree's id is its own tree)."""
        target = self._repo[commit]
        if isinstance(target, pygit2.Tree):
            return commit
        return str(target.peel(pygit2.Commit).tree_id)

    def build_tree(self, tree: str | None, changes: dict[str, NewContent]) -> str:
        """`tree` with `changes` applied; only the directories on the changed paths are
        rewritten, so the cost does not grow with the size of the repository."""
        nested: _Nested = {}
        for path, change in changes.items():
            *dirs, name = path.split("/")
            node = nested
            for part in dirs:
                node = cast(_Nested, node.setdefault(part, {}))
            node[name] = change
        base = self._tree(tree) if tree else None
        return str(self._build(base, nested) or self._repo.TreeBuilder().write())

    def _build(self, tree: pygit2.Tree | None, nested: _Nested) -> pygit2.Oid | None:
        builder = self._repo.TreeBuilder(tree) if tree is not None else self._repo.TreeBuilder()
        for name, change in nested.items():
            existing: pygit2.Object | None = builder.get(name)
            entry: tuple[pygit2.Oid, int] | None
            if isinstance(change, dict):
                is_tree = existing is not None and existing.type_str == "tree"
                subtree = self._tree(existing.id) if existing is not None and is_tree else None
                oid = self._build(subtree, change)
                entry = (oid, pygit2.GIT_FILEMODE_TREE) if oid is not None else None
            elif change.data is None:
                entry = None
            else:
                keep = existing.filemode if existing and existing.type_str == "blob" else None
                mode = MODES.get(change.mode) if change.mode else None
                entry = (
                    self._repo.create_blob(change.data),
                    mode or keep or pygit2.GIT_FILEMODE_BLOB,
                )
            if existing is not None:
                builder.remove(name)
            if entry is not None:
                builder.insert(name, *entry)
        return builder.write() if len(builder) else None

    def changed_lines(self, old_tree: str, new_tree: str) -> int:
        stats = self._tree(old_tree).diff_to_tree(self._tree(new_tree)).stats
        return stats.insertions + stats.deletions

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Paths that differ between two commits (or trees), renames as delete and add."""
        deltas = self._diff(old, new).deltas
        return sorted(
            {diff_file_path(d.new_file) for d in deltas}
            | {diff_file_path(d.old_file) for d in deltas}
        )

    def diff(self, old: str, new: str) -> str:
        """`git diff old new` as text (commits or trees)."""
        return self._diff(old, new).patch or ""

    def patch_id(self, old: str, new: str) -> str | None:
        """The patch id of the change from `old` to `new` (as `git patch-id --stable`: line
        numbers and whitespace ignored); None when they do not differ."""
        diff = self._diff(old, new)
        return str(diff.patchid) if len(diff) else None

    def _diff(self, old: str, new: str) -> pygit2.Diff:
        return self._tree(self.tree_of(old)).diff_to_tree(self._tree(self.tree_of(new)))

    def tree_paths(self, commit: str) -> list[str]:
        """Every file path in a commit's tree."""
        return sorted(_walk(self._tree(self.tree_of(commit)), ""))

    def export(self, tree: str, dest: Path) -> None:
        """Write a tree's files under `dest` (a fresh directory): a copy that shares nothing
        with the repository, for processes that read a commit but must not see the checkout."""
        for path, entry in _entries(self._tree(tree), ""):
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            data = self._blob_data(entry.id)
            if entry.filemode == pygit2.enums.FileMode.LINK:
                target.symlink_to(os.fsdecode(data))
            else:
                target.write_bytes(data)
                if entry.filemode == pygit2.enums.FileMode.BLOB_EXECUTABLE:
                    target.chmod(0o755)


def _walk(tree: pygit2.Tree, prefix: str) -> Iterator[str]:
    for entry in tree:
        if entry.type_str == "tree":
            yield from _walk(cast(pygit2.Tree, entry), f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}"


def _entries(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Object]]:
    """(path, entry) of every blob and link of a tree; submodules are left out."""
    for entry in tree:
        if entry.type_str == "tree":
            yield from _entries(cast(pygit2.Tree, entry), f"{prefix}{entry.name}/")
        elif entry.type_str == "blob":
            yield f"{prefix}{entry.name}", entry
