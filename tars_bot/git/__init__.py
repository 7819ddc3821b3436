"""The thin pygit2 layer. No module outside this package imports pygit2; its errors become
TarsError here."""

from tars_bot.git.diff import FilePatch, Hunk, parse_diff
from tars_bot.git.objects import EntryKind, NewContent
from tars_bot.git.repo import (
    RefConflict,
    Repo,
    create_repository,
    is_valid_branch_name,
    sync_clone,
)
from tars_bot.git.worktree import Worktree

__all__ = [
    "EntryKind",
    "FilePatch",
    "Hunk",
    "NewContent",
    "RefConflict",
    "Repo",
    "Worktree",
    "create_repository",
    "is_valid_branch_name",
    "parse_diff",
    "sync_clone",
]
