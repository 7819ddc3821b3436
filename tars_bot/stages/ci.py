"""The repository's own CI on one commit, as GitHub reports it (commit statuses and check runs),
judged green, pending or red for the `checks_green` requirement."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["green", "pending", "red"]
# tars-bot's own check runs (`tars-bot / validation`, `tars-bot / gate`) judge the execution,
# not the repository's CI; the gate's is `action_required` while it waits, by design.
OWN_PREFIX = "tars-bot"
# check run conclusions that pass, as GitHub's branch protection counts them
PASSING = frozenset({"success", "neutral", "skipped"})


@dataclass(frozen=True)
class CIReport:
    """One commit status (its context) or one check run (its name)."""

    kind: Literal["status", "check_run"]
    name: str
    outcome: Outcome
    detail: str  # the state or conclusion GitHub gave, e.g. "failure", "in_progress"
    url: str | None = None


def status_outcome(state: str) -> Outcome:
    """A commit status's state: success, pending, failure or error."""
    if state in ("success", "pending"):
        return "green" if state == "success" else "pending"
    return "red"


def check_run_outcome(status: str, conclusion: str | None) -> Outcome:
    if status != "completed" or conclusion is None:
        return "pending"
    return "green" if conclusion in PASSING else "red"


def judge(reports: Iterable[CIReport], sha: str) -> tuple[Outcome, str]:
    """The CI's verdict on `sha` and why, tars-bot's own check runs left out. Nothing reported
    is pending, not green: right after a push CI has not started yet."""
    theirs = [r for r in reports if not r.name.startswith(OWN_PREFIX)]
    red = [r for r in theirs if r.outcome == "red"]
    pending = [r for r in theirs if r.outcome == "pending"]
    short = sha[:10]
    if red:
        return "red", f"CI failed on {short}: {_names(red)}"
    if pending:
        return "pending", f"CI is still running on {short}: {_names(pending)}"
    if not theirs:
        return "pending", f"no CI has reported on {short} yet"
    return "green", f"CI passed on {short} ({len(theirs)} check{'s' * (len(theirs) != 1)})"


def _names(reports: list[CIReport]) -> str:
    shown = ", ".join(f"{r.name} ({r.detail})" for r in reports[:5])
    return shown + (f" and {len(reports) - 5} more" if len(reports) > 5 else "")
