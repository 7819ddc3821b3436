"""Repository-relative paths: validation and glob scopes."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property

GLOB_CHARS = frozenset("*?[")


class PathProblem(ValueError):
    """A path an improvement may not name; the message says why."""


def normalize(path: str) -> str:
    """Return `path` as a clean POSIX path relative to the repository root, or raise PathProblem."""
    if not path or not path.strip():
        raise PathProblem("empty path")
    if "\0" in path:
        raise PathProblem(f"{path!r} contains a NUL byte")
    if "\\" in path:
        raise PathProblem(f"{path!r} uses backslashes; write paths with '/'")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise PathProblem(f"{path!r} is absolute; paths are relative to the repository root")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PathProblem(f"{path!r} leaves the repository ('..' is not allowed)")
    if any(part.lower() == ".git" for part in parts):
        raise PathProblem(f"{path!r} is inside .git")
    if not parts:
        raise PathProblem(f"{path!r} names the repository root, not a file")
    return "/".join(parts)


def ancestors_and_self(path: str) -> list[str]:
    """'a/b/c.py' -> ['a', 'a/b', 'a/b/c.py']."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := segment.find("]", i + 2)) != -1:
            body = segment[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + re.escape(body).replace(r"\-", "-") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> str:
    """Translate a glob where `*` stays within one directory and `**` spans any number."""
    segments = pattern.strip("/").split("/")
    regex = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            regex.append(".*" if last else "(?:[^/]+/)*")
        else:
            regex.append(_segment_regex(segment) + ("" if last else "/"))
    return "".join(regex)


def is_glob(text: str) -> bool:
    return any(char in GLOB_CHARS for char in text)


class Scope:
    """Where a step may write, as git's glob pathspecs (`:(glob)`) say: a path without glob
    characters covers itself and everything below it; a glob must match the whole path."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        globs = [f"(?:{glob_regex(p)})" for p in self.patterns if is_glob(p)]
        return re.compile("|".join(globs) or "(?!)")

    @cached_property
    def _literals(self) -> frozenset[str]:
        return frozenset(p.strip("/") for p in self.patterns if not is_glob(p))

    def covers(self, path: str) -> bool:
        if self._regex.fullmatch(path):
            return True
        return any(p in self._literals for p in ancestors_and_self(path))

    def __repr__(self) -> str:
        return f"Scope({self.patterns!r})"


MAX_LINK_HOPS = 40  # as Linux's own limit on following symbolic links


def resolve_link(path: str, read_link: Callable[[str], str | None]) -> str | None:
    """Where the symbolic link `path` leads, following every link on the way as the file
    system would (`read_link` gives a path's link target, or None for other entries); None
    when it leaves the tree, is absolute, or loops."""
    pending = [*path.split("/")[:-1], *(read_link(path) or "").split("/")]
    if (read_link(path) or "").startswith("/"):
        return None
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        target = read_link("/".join([*resolved, part]))
        if target is None:
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS or target.startswith("/"):
            return None
        pending = [*target.split("/"), *pending]
    return "/".join(resolved)
