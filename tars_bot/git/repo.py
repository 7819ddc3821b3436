"""The repository: refs (compare-and-swap), objects, trees, commits, worktrees, remotes; each
job in a part of its own, `Repo` the sum of them."""

from __future__ import annotations

from pathlib import Path

import pygit2

from tars_bot.errors import TarsError
from tars_bot.git.commits import Commits
from tars_bot.git.objects import signature
from tars_bot.git.refs import RefConflict, Refs
from tars_bot.git.remote import Callbacks
from tars_bot.git.remotes import Remotes
from tars_bot.git.worktrees import Worktrees

__all__ = ["RefConflict", "Repo", "create_repository", "is_valid_branch_name", "sync_clone"]


class Repo(Refs, Commits, Worktrees, Remotes):
    """A repository opened from any directory inside its working tree."""


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


def sync_clone(url: str, path: Path, branch: str, token: str | None) -> Repo:
    """A clone at `path`, made or fetched, whose working tree is the remote's `branch`. Only for
    clones tars-bot owns (the webhook app's local workers): it resets them."""
    callbacks = Callbacks(token)
    try:
        if not (path / ".git").exists():
            pygit2.clone_repository(url, str(path), callbacks=callbacks)
        repo = pygit2.Repository(str(path))
        repo.remotes["origin"].fetch(callbacks=callbacks)
        target = repo.references[f"refs/remotes/origin/{branch}"].target
    except (pygit2.GitError, KeyError) as e:
        raise TarsError(f"cannot sync {url} ({branch}) into {path.name}: {e}") from None
    repo.references.create(f"refs/heads/{branch}", target, force=True)
    repo.set_head(f"refs/heads/{branch}")
    repo.reset(target, pygit2.enums.ResetMode.HARD)
    return Repo(path)


def is_valid_branch_name(name: str) -> bool:
    return pygit2.reference_is_valid_name(f"refs/heads/{name}")
