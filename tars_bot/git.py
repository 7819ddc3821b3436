"""The thin pygit2 layer. No other module imports pygit2; its errors become TarsError here."""

from __future__ import annotations

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
