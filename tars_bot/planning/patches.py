"""Unified diffs: accept what `git apply` accepts, apply hunks to file contents in memory."""

from __future__ import annotations

import functools
import re

from tars_bot import git
from tars_bot.errors import TarsError
from tars_bot.git import FilePatch, Hunk

_HEADER = re.compile(r"^(---|\+\+\+) (\S+|\"[^\"]*\")(?:\t.*)?$")


class PatchProblem(ValueError):
    """A patch that cannot be parsed or does not apply; the message says where."""


def _headerless_to_git(text: str) -> str:
    """Give `diff -u` output the `diff --git` headers that libgit2's parser requires."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        old = _HEADER.match(lines[i].rstrip("\r\n"))
        new = _HEADER.match(lines[i + 1].rstrip("\r\n")) if i + 1 < len(lines) else None
        if old and new and old[1] == "---" and new[1] == "+++":
            old_path, new_path = _strip_prefixes(old[2], new[2])
            path = new_path or old_path
            out.append(f"diff --git a/{path} b/{path}\n")
            if old_path is None:
                out.append("new file mode 100644\n")
            if new_path is None:
                out.append("deleted file mode 100644\n")
            out.append(f"--- {'a/' + old_path if old_path else '/dev/null'}\n")
            out.append(f"+++ {'b/' + new_path if new_path else '/dev/null'}\n")
            i += 2
        else:
            out.append(lines[i])
            i += 1
    return "".join(out)


def _strip_prefixes(old: str, new: str) -> tuple[str | None, str | None]:
    old_path = None if old == "/dev/null" else old.strip('"')
    new_path = None if new == "/dev/null" else new.strip('"')
    present = [p for p in (old_path, new_path) if p is not None]
    if present and all(p.startswith(("a/", "b/")) for p in present):
        old_path = old_path[2:] if old_path else None
        new_path = new_path[2:] if new_path else None
    return old_path, new_path


@functools.lru_cache(maxsize=64)  # the planner reads each patch for its paths, then applies it
def parse(text: str) -> tuple[FilePatch, ...]:
    if "diff --git " not in text:
        text = _headerless_to_git(text)
    if not text.endswith("\n"):
        text += "\n"
    try:
        patches = git.parse_diff(text)
    except TarsError as e:
        raise PatchProblem(str(e)) from None
    if not patches:
        raise PatchProblem("contains no file changes")
    for patch in patches:
        if patch.binary:
            raise PatchProblem(
                f"binary patch for {patch.new_path or patch.old_path} is not supported"
            )
    return tuple(patches)


def _lines(data: bytes) -> list[bytes]:
    return (
        data.splitlines(keepends=True)
        if b"\r" not in data
        else re.findall(rb"[^\n]*\n|[^\n]+$", data)
    )


def _find(lines: list[bytes], hunk: Hunk, expected: int) -> int | None:
    """Where the hunk's old lines start: at `expected` or the nearest offset, as git apply does."""
    size = len(hunk.old)
    if size == 0:
        return min(max(expected, 0), len(lines))
    for start in sorted(range(len(lines) - size + 1), key=lambda s: abs(s - expected)):
        if lines[start : start + size] == hunk.old:
            return start
    return None


def apply(patch: FilePatch, data: bytes | None) -> bytes | None:
    """The file's content after `patch`; None when the patch deletes it."""
    path = patch.new_path or patch.old_path
    if patch.old_path is None and data is not None:
        raise PatchProblem(f"creates {path}, which already exists")
    if patch.old_path is not None and data is None:
        raise PatchProblem(f"changes {patch.old_path}, which does not exist")
    lines = _lines(data or b"")
    offset = 0
    for number, hunk in enumerate(patch.hunks, 1):
        # a hunk that only adds lines names the line it follows (`@@ -3,0 +4 @@`)
        anchor = hunk.old_start - 1 if hunk.old else hunk.old_start
        start = _find(lines, hunk, anchor + offset)
        if start is None:
            raise PatchProblem(
                f"hunk {number} does not apply to {path} (near line {hunk.old_start})"
            )
        lines[start : start + len(hunk.old)] = hunk.new
        offset = start - anchor + len(hunk.new) - len(hunk.old)
    if patch.new_path is None:
        if lines:
            raise PatchProblem(f"deletes {path}, but its content differs from the patch")
        return None
    return b"".join(lines)
