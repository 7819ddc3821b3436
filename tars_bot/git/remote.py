"""Talking to remotes: token credentials and per-ref push results."""

from __future__ import annotations

import pygit2


class Callbacks(pygit2.RemoteCallbacks):
    """Token credentials (as GitHub takes them over HTTPS) and per-ref push results."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token
        self.rejected: dict[str, str] = {}

    def credentials(self, url: str, username: str | None, allowed: int) -> pygit2.UserPass:
        if self.token is None:
            raise pygit2.GitError(f"{url} asks for credentials; set GITHUB_TOKEN")
        return pygit2.UserPass("x-access-token", self.token)

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message
