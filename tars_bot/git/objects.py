"""Plain records shared by the git layer and its callers, and pygit2's file modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pygit2

EntryKind = Literal["file", "executable", "symlink", "dir", "submodule"]
KINDS: dict[int, EntryKind] = {
    pygit2.GIT_FILEMODE_BLOB: "file",
    pygit2.GIT_FILEMODE_BLOB_EXECUTABLE: "executable",
    pygit2.GIT_FILEMODE_LINK: "symlink",
    pygit2.GIT_FILEMODE_TREE: "dir",
    pygit2.GIT_FILEMODE_COMMIT: "submodule",
}
MODES = {kind: mode for mode, kind in KINDS.items()}


@dataclass(frozen=True)
class NewContent:
    """What a path holds after a step: data (None: deleted) and mode (None: keep)."""

    data: bytes | None
    mode: EntryKind | None = None


FALLBACK_IDENTITY = ("tars-bot", "tars-bot@users.noreply.github.com")


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """The configured git identity, or tars-bot's own when git has none."""
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        return pygit2.Signature(*FALLBACK_IDENTITY)
