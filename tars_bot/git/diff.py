"""Parsing git-style diffs with libgit2 into plain records."""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from tars_bot.errors import TarsError


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


def diff_file_path(diff_file: pygit2.DiffFile) -> str:
    return diff_file.raw_path.decode("utf-8", "surrogateescape")


def parse_diff(text: str) -> list[FilePatch]:
    """Parse a git-style diff (with `diff --git` headers) into plain records."""
    try:
        diff = pygit2.Diff.parse_diff(text)
    except (pygit2.GitError, KeyError) as e:
        raise TarsError(f"not a valid diff: {e}") from None
    return [_file_patch(patch) for patch in diff if patch is not None]


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
        old_path=None if delta.status == pygit2.GIT_DELTA_ADDED else diff_file_path(delta.old_file),
        new_path=None
        if delta.status == pygit2.GIT_DELTA_DELETED
        else diff_file_path(delta.new_file),
        hunks=hunks,
        binary=bool(delta.is_binary),
        executable=delta.new_file.mode == pygit2.GIT_FILEMODE_BLOB_EXECUTABLE,
    )
