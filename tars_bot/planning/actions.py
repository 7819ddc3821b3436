"""Step actions that change files directly: patch, edit, write, delete.

Each works on a `Files` view: a commit's tree in memory (the planner, and the executor until a step
needs a checkout) or a worktree on disk, with the very same code. `run` steps are processes; they
live in the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tars_bot.git import EntryKind, NewContent, Repo
from tars_bot.models import DeleteAction, EditAction, PatchAction, RunAction, WriteAction
from tars_bot.paths import PathProblem, ancestors_and_self, normalize
from tars_bot.planning import patches

FileAction = PatchAction | EditAction | WriteAction | DeleteAction


class ActionProblem(ValueError):
    """An action that cannot be applied. `field` is relative to the step, e.g. 'edit.search'."""

    def __init__(self, field: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.path = path


class Files(Protocol):
    """A tree of files. Methods raise PathProblem for paths they refuse (symlinks, directories)."""

    def read(self, path: str) -> bytes | None: ...
    def write(self, path: str, data: bytes, executable: bool | None) -> None: ...
    def delete(self, path: str) -> None: ...
    def changes(self, paths: list[str]) -> dict[str, NewContent]: ...


def _mode(executable: bool | None) -> EntryKind | None:
    return None if executable is None else ("executable" if executable else "file")


class TreeFiles:
    """A commit's tree with changes layered on top in memory; nothing touches the disk."""

    def __init__(self, repo: Repo, tree: str) -> None:
        self._repo, self._tree = repo, tree
        self._changes: dict[str, NewContent] = {}

    def read(self, path: str) -> bytes | None:
        if path in self._changes:
            return self._changes[path].data
        kind = self._repo.kind(self._tree, path)
        if kind == "symlink":
            raise PathProblem(f"{path} is a symbolic link")
        if kind in ("dir", "submodule"):
            raise PathProblem(f"{path} is a directory")
        return self._repo.read(self._tree, path)

    def write(self, path: str, data: bytes, executable: bool | None) -> None:
        for parent in ancestors_and_self(path)[:-1]:
            kind = self._repo.kind(self._tree, parent)
            changed = self._changes.get(parent)
            if (changed and changed.data is not None) or (
                kind in ("file", "executable") and changed is None
            ):
                raise PathProblem(f"{path}: {parent} is a file, not a directory")
            if kind == "symlink":
                raise PathProblem(
                    f"{path}: {parent} is a symbolic link; writes may not pass through it"
                )
        if path not in self._changes and self._repo.kind(self._tree, path) in ("dir", "submodule"):
            raise PathProblem(f"{path} is a directory")
        self._changes[path] = NewContent(data, _mode(executable))

    def delete(self, path: str) -> None:
        self._changes[path] = NewContent(None)

    def changes(self, paths: list[str]) -> dict[str, NewContent]:
        return {path: self._changes[path] for path in paths if path in self._changes}


@dataclass(frozen=True)
class Change:
    field: str
    path: str
    data: bytes | None  # None: deleted
    executable: bool | None = None  # None: keep the file's mode


def _path(field: str, path: str) -> str:
    try:
        return normalize(path)
    except PathProblem as e:
        raise ActionProblem(field, str(e), path) from None


def _read(field: str, files: Files, path: str) -> bytes | None:
    try:
        return files.read(path)
    except PathProblem as e:
        raise ActionProblem(field, str(e), path) from None


def _changes(action: FileAction, files: Files) -> list[Change]:
    match action:
        case EditAction(path=path, search=search, replace=replace):
            path = _path("edit.path", path)
            data = _read("edit.path", files, path)
            if data is None:
                raise ActionProblem("edit.path", f"{path} does not exist", path)
            count = data.count(search.encode())
            if count != 1:
                found = (
                    "text not found" if count == 0 else f"text occurs {count} times (must be once)"
                )
                raise ActionProblem("edit.search", f"{found} in {path}", path)
            return [Change("edit.path", path, data.replace(search.encode(), replace.encode()))]
        case WriteAction(path=path, content=content, executable=executable):
            return [Change("write.path", _path("write.path", path), content.encode(), executable)]
        case DeleteAction(paths=paths):
            changes = []
            for i, raw in enumerate(paths, 1):
                path = _path(f"delete[{i}]", raw)
                if _read(f"delete[{i}]", files, path) is None:
                    raise ActionProblem(f"delete[{i}]", f"{path} does not exist", path)
                changes.append(Change(f"delete[{i}]", path, None))
            return changes
        case PatchAction(diff=diff):
            return _patch_changes(diff, files)
    raise AssertionError(f"unhandled action {action!r}")


def _patch_changes(diff: str, files: Files) -> list[Change]:
    try:
        file_patches = patches.parse(diff)
    except patches.PatchProblem as e:
        raise ActionProblem("patch", str(e)) from None
    changes = []
    for file_patch in file_patches:
        old = _path("patch", file_patch.old_path) if file_patch.old_path else None
        new = _path("patch", file_patch.new_path) if file_patch.new_path else None
        path = old or new
        assert path is not None, "a parsed patch names at least one side"
        try:
            data = patches.apply(file_patch, _read("patch", files, path))
        except patches.PatchProblem as e:
            raise ActionProblem("patch", str(e), new or old) from None
        if old and old != new:
            changes.append(Change("patch", old, None))
        if new:
            changes.append(Change("patch", new, data, file_patch.executable or None))
    return changes


def static_paths(action: RunAction | FileAction) -> list[str] | None:
    """Paths the action changes, known without running it; None for `run`."""
    match action:
        case RunAction():
            return None
        case EditAction(path=path):
            return [_path("edit.path", path)]
        case WriteAction(path=path):
            return [_path("write.path", path)]
        case DeleteAction(paths=paths):
            return [_path(f"delete[{i}]", p) for i, p in enumerate(paths, 1)]
        case PatchAction(diff=diff):
            try:
                file_patches = patches.parse(diff)
            except patches.PatchProblem as e:
                raise ActionProblem("patch", str(e)) from None
            paths = [p for fp in file_patches for p in (fp.old_path, fp.new_path) if p]
            return [_path("patch", p) for p in dict.fromkeys(paths)]
    raise AssertionError(f"unhandled action {action!r}")


def apply(action: FileAction, files: Files) -> list[str]:
    """Apply the action to `files`; return the changed paths. Content problems write nothing."""
    changes = _changes(action, files)
    for change in changes:
        try:
            if change.data is None:
                files.delete(change.path)
            else:
                files.write(change.path, change.data, change.executable)
        except PathProblem as e:
            raise ActionProblem(change.field, str(e), change.path) from None
    return [change.path for change in changes]
