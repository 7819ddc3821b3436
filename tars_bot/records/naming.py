"""Execution ids as people type them: in full, a unique prefix, `latest`, or the latest
execution of an improvement."""

from __future__ import annotations

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.records import journal

LATEST = "latest"
SHOWN = 5  # candidates named when a prefix is ambiguous


def resolve(repo: Repo, given: str | None, improvement: str | None = None) -> str:
    """The full id of the execution `given` names, or of `improvement`'s latest execution."""
    if improvement is not None:
        return latest_of(repo, improvement)
    if not given:
        raise TarsError("name an execution: --execution-id ID (a prefix, or `latest`)")
    ids = sorted(journal.execution_ids(repo), reverse=True)  # ids sort by time: newest first
    if given == LATEST:
        newest = _newest(repo, ids)
        if newest is None:
            raise TarsError("no executions yet: `latest` names none")
        return newest
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TarsError(f"execution {given!r}: no such execution (see `tars-bot history`)")
    more = f" and {len(matches) - SHOWN} more" if len(matches) > SHOWN else ""
    raise TarsError(
        f"execution {given!r} is ambiguous: it begins {', '.join(matches[:SHOWN])}{more}"
    )


def latest_of(repo: Repo, improvement: str) -> str:
    """The id of `improvement`'s most recent execution (unreadable journals skipped)."""
    found = _newest(repo, sorted(journal.execution_ids(repo), reverse=True), improvement)
    if found is None:
        raise TarsError(f"improvement {improvement!r} has no executions (see `tars-bot history`)")
    return found


def _newest(repo: Repo, ids: list[str], improvement: str | None = None) -> str | None:
    """The first of `ids` (newest first) whose journal is readable, and of `improvement`."""
    for execution_id in ids:
        try:
            execution = journal.load(repo, execution_id)
        except journal.UnreadableJournal:
            continue  # said when history or recover read it
        if improvement in (None, execution.improvement):
            return execution_id
    return None
