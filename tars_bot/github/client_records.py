"""What the GitHub client hands back (issues, pull requests) and the bodies it sends, cut to
GitHub's limit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from github.PullRequestPart import PullRequestPart

BODY_LIMIT = 65_536  # characters in an issue, pull request or comment body


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Issue:
    """An issue or pull request; the head and base fields are set for pull requests only."""

    number: int
    title: str
    body: str
    state: str
    labels: tuple[str, ...]
    is_pull_request: bool
    head_sha: str | None = None
    head_ref: str | None = None
    head_repo_full_name: str | None = None  # None also when the head fork was deleted
    base_repo_full_name: str | None = None
    author: str = ""  # who opened it: a marker in its body counts only if that is tars-bot
    merged: bool = False
    merge_commit_sha: str | None = None  # a merged pull request's merge, squash or last commit

    @property
    def from_fork(self) -> bool:
        return self.is_pull_request and self.head_repo_full_name != self.base_repo_full_name


def fit_body(text: str, limit: int = BODY_LIMIT) -> str:
    """`text` cut to `limit` characters, keeping the end (where logs and results are) and saying
    how much was cut."""
    if len(text) <= limit:
        return text
    overflow = len(text) - limit
    cut = overflow
    # cutting more can lengthen the number in the marker: cut again until the marker fits
    while len(_cut_marker(cut)) + len(text) - cut > limit:
        cut = overflow + len(_cut_marker(cut))
    if cut >= len(text):
        raise ValueError(f"limit {limit} leaves no room for the text")
    return _cut_marker(cut) + text[cut:]


def _cut_marker(cut: int) -> str:
    return f"*[{cut:,} characters cut from the start to fit GitHub's limit]*\n\n"


def pull_number(url: str | None) -> int | None:
    """The number in a pull request's URL (what an execution records)."""
    url = (url or "").rstrip("/")
    number = url.rpartition("/pull/")[2]
    return int(number) if "/pull/" in url and number.isdigit() else None


def with_head(
    record: Issue,
    head: PullRequestPart,
    base: PullRequestPart,
    merged: bool | None = None,
    merge_commit_sha: str | None = None,
) -> Issue:
    return dataclasses.replace(
        record,
        head_sha=head.sha,
        head_ref=head.ref,
        head_repo_full_name=head.repo.full_name if head.repo else None,
        base_repo_full_name=base.repo.full_name,
        merged=bool(merged),
        merge_commit_sha=merge_commit_sha if merged else None,
    )
