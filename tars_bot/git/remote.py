"""Talking to remotes: token credentials and per-ref push results."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pygit2


def token_host() -> str:
    """The only host the token is sent to: GitHub's (GITHUB_SERVER_URL on GitHub Enterprise)."""
    return urlsplit(os.environ.get("GITHUB_SERVER_URL") or "https://github.com").hostname or ""


class Callbacks(pygit2.RemoteCallbacks):
    """Token credentials (as GitHub takes them over HTTPS) and per-ref push results."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token
        self.rejected: dict[str, str] = {}

    def credentials(self, url: str, username: str | None, allowed: int) -> pygit2.UserPass:
        if self.token is None:
            raise pygit2.GitError(f"{url} asks for credentials; set GITHUB_TOKEN")
        # libgit2 hands over the URL after `url.*.insteadOf` rewriting: whatever a config says,
        # the token goes to the expected host over HTTPS only
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname != token_host():
            raise pygit2.GitError(
                f"{parts.scheme}://{parts.hostname} asks for credentials; tars-bot sends its "
                f"token only to https://{token_host()} (GITHUB_SERVER_URL)"
            )
        return pygit2.UserPass("x-access-token", self.token)

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message
