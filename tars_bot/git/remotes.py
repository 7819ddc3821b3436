"""Remotes and bundles: what a remote has, push and fetch, and bundles handed between jobs."""

from __future__ import annotations

from pathlib import Path

import pygit2

from tars_bot.errors import TarsError
from tars_bot.git.core import RepoCore
from tars_bot.git.remote import Callbacks


class Remotes(RepoCore):
    def _remote(self, remote: str) -> pygit2.Remote:
        try:
            return self._repo.remotes[remote]
        except KeyError:
            return self._repo.remotes.create_anonymous(remote)  # a URL or path given directly

    def remote_refs(self, remote: str, token: str | None = None) -> dict[str, str]:
        """The refs the remote has now: name -> commit id."""
        callbacks = Callbacks(token)
        try:
            heads = self._remote(remote).list_heads(callbacks=callbacks)
        except pygit2.GitError as e:
            raise TarsError(f"cannot reach remote {remote}: {e}") from None
        return {head.name: str(head.oid) for head in heads if head.name is not None}

    def push(self, remote: str, refspecs: list[str], token: str | None = None) -> None:
        callbacks = Callbacks(token)
        try:
            self._remote(remote).push(refspecs, callbacks=callbacks)
        except pygit2.GitError as e:
            raise TarsError(f"push to {remote} failed: {e}") from None
        if callbacks.rejected:
            refused = "; ".join(f"{ref}: {why}" for ref, why in callbacks.rejected.items())
            raise TarsError(f"push to {remote} refused: {refused}")

    def fetch(self, remote: str, refspecs: list[str], token: str | None = None) -> None:
        try:
            self._remote(remote).fetch(refspecs, callbacks=Callbacks(token))
        except pygit2.GitError as e:
            raise TarsError(f"fetch from {remote} failed: {e}") from None

    def create_bundle(self, path: Path, refs: list[str], exclude: str) -> None:
        """A git bundle at `path` holding `refs` and what they add to `exclude`."""
        self._git("bundle", "create", "--quiet", str(path), *refs, f"^{exclude}")

    def bundle_refs(self, path: Path) -> dict[str, str]:
        """The refs a bundle holds: name -> commit id (git checks the bundle first)."""
        self._git("bundle", "verify", "--quiet", str(path))
        lines = self._git("bundle", "list-heads", str(path)).splitlines()
        return {name: commit for commit, name in (line.split(" ", 1) for line in lines)}

    def fetch_bundle(self, path: Path, refspecs: list[str]) -> None:
        """Bring a bundle's objects in, its refs to where `refspecs` say."""
        self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(path), *refspecs)
