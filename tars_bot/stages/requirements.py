"""The requirements for promoting an execution to prod (Atlantis' apply requirements, targeted):
each one judged with why, so that a refusal names every requirement that is not met.

- approved: the promotion gate's approval, by someone with write, maintain or admin permission
  (on GitHub anyone with read can approve a pull request: that does not count), naming the head.
- not_self: the approver is not the execution's requester.
- checks_green: the repository's own CI is green on the exact head commit.
- undiverged: the base branch changed none of the execution's files since its base commit;
  changes elsewhere on the base are fine.
- plan_digest: the approval names the journaled plan, and that plan is intact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Execution, ExecutionPlan, Gate
from tars_bot.stages.ci import CIReport, judge
from tars_bot.stages.config import REQUIREMENTS, Requirement

WRITERS = frozenset({"write", "maintain", "admin"})
LISTED_PATHS = 5


@dataclass(frozen=True)
class Promotion:
    """What promoting an execution is judged on."""

    execution: Execution
    plan: ExecutionPlan  # as journaled
    base_tip: str  # the base branch's commit now
    given_requester: str | None  # who asked for the execution, when the caller knows better

    @property
    def requester(self) -> str | None:
        """Who asked for the execution: as given, else as its journal recorded it."""
        return self.given_requester or self.execution.requested_by

    ci: list[CIReport] | None  # the CI on the head commit; None: not read (no GitHub)

    @property
    def head(self) -> str:
        head = self.execution.head_commit
        if head is None:
            raise TarsError(f"execution {self.execution.id}: has no head commit to promote")
        return head


@dataclass(frozen=True)
class Finding:
    requirement: Requirement
    met: bool
    why: str

    def __str__(self) -> str:
        return f"{self.requirement}: {self.why}"


def evaluate(
    repo: Repo, promotion: Promotion, requirements: Iterable[Requirement] = REQUIREMENTS
) -> list[Finding]:
    """Each requirement judged, in the order given."""
    return [Finding(name, *_JUDGES[name](repo, promotion)) for name in requirements]


def unmet(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if not f.met]


def promotion_gate(execution: Execution) -> Gate | None:
    """The execution's latest promotion gate, if it has one."""
    return next((g for g in reversed(execution.gates) if g.kind == "promotion"), None)


def _approved(repo: Repo, p: Promotion) -> tuple[bool, str]:
    gate = promotion_gate(p.execution)
    if gate is None or gate.decision is None:
        return False, "no approval of the promotion is recorded in the journal"
    decision = gate.decision
    if decision.verdict != "approve" or gate.status != "approved":
        return False, f"the promotion gate is {gate.status} (by {decision.by})"
    if decision.permission not in WRITERS:
        held = decision.permission or "unknown"
        return False, (
            f"{decision.by} approved with {held} permission; only an approval by someone with "
            "write, maintain or admin permission counts"
        )
    for bound, what in ((decision.commit, "approval"), (gate.commit, "gate")):
        if bound != p.head:
            return False, (
                f"the {what} names {bound[:10]}, but the head is {p.head[:10]}: "
                f"approve {p.head[:10]} again"
            )
    return True, f"approved by {decision.by} ({decision.permission}) on {p.head[:10]}"


def _not_self(repo: Repo, p: Promotion) -> tuple[bool, str]:
    gate = promotion_gate(p.execution)
    decision = gate.decision if gate is not None else None
    if decision is None:
        return False, "no approver to tell apart from the requester"
    if p.requester is None:
        return False, "the execution's requester is not known, so a self-approval is not ruled out"
    if decision.by.casefold() == p.requester.casefold():  # GitHub logins ignore case
        return False, f"{decision.by} asked for this execution and cannot approve it too"
    return True, f"approved by {decision.by}, not by the requester {p.requester}"


def _checks_green(repo: Repo, p: Promotion) -> tuple[bool, str]:
    if p.ci is None:
        return False, f"the CI on {p.head[:10]} was not read (no connection to GitHub)"
    outcome, why = judge(p.ci, p.head)
    return outcome == "green", why


def _undiverged(repo: Repo, p: Promotion) -> tuple[bool, str]:
    base, tip = p.execution.base_commit, p.base_tip
    if not repo.has_object(tip):
        return False, f"the base branch's commit {tip[:10]} is not in the repository: fetch it"
    if tip == base:
        return True, f"the base has not moved since {base[:10]}"
    # tree diffs: libgit2 skips subtrees whose ids agree, so the cost follows the change
    moved = set(repo.changed_paths(base, tip))
    overlap = sorted(moved & changed_by(repo, p.execution))
    if overlap:
        shown = ", ".join(overlap[:LISTED_PATHS])
        more = f" and {len(overlap) - LISTED_PATHS} more" if len(overlap) > LISTED_PATHS else ""
        return False, (
            f"the base moved {base[:10]} → {tip[:10]} and changed {shown}{more}, which this "
            "execution changes too: execute it again on the new base"
        )
    return True, (
        f"the base moved {base[:10]} → {tip[:10]}, changing {len(moved)} "
        f"file{'s' * (len(moved) != 1)}, none of this execution's"
    )


def changed_by(repo: Repo, execution: Execution) -> set[str]:
    """The files the execution changed: each step's (a reverted one's too), and its whole change
    base to head, so that nothing it touched escapes the check."""
    paths = {path for step in execution.steps for path in step.changed_files}
    if execution.head_commit is not None:
        paths |= set(repo.changed_paths(execution.base_commit, execution.head_commit))
    return paths


def _plan_digest(repo: Repo, p: Promotion) -> tuple[bool, str]:
    journaled = p.plan.digest
    if not p.plan.is_sealed:
        return False, "the journaled plan does not match its own digest: it was altered"
    gate = promotion_gate(p.execution)
    if gate is None:
        return False, "no approval names a plan digest"
    if gate.plan_digest != journaled:
        return False, (
            f"the approval names plan {gate.plan_digest[:19]}, but the execution ran plan "
            f"{journaled[:19]}"
        )
    return True, f"the approval names the plan executed ({journaled[:19]})"


_JUDGES: dict[Requirement, Callable[[Repo, Promotion], tuple[bool, str]]] = {
    "approved": _approved,
    "not_self": _not_self,
    "checks_green": _checks_green,
    "undiverged": _undiverged,
    "plan_digest": _plan_digest,
}
