"""The promotion to prod: the gate every merge path passes first (G6), and the check, after the
merge, that the base branch holds the change approved (G7: verify the effect, not the decision;
Flagger once reported promotions it had not made)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Execution, Landing
from tars_bot.records import journal
from tars_bot.rollback import landing as landings
from tars_bot.stages.ci import CIReport
from tars_bot.stages.config import REQUIREMENTS, MergeMethod, Requirement
from tars_bot.stages.requirements import (
    Finding,
    Promotion,
    evaluate,
    promotion_gate,
    unmet,
)


class PromotionRefused(TarsError):
    """A merge refused before anything was sent: every unmet requirement, named."""


class Merger(Protocol):
    """What merges a pull request (the GitHub client): refused by GitHub if its head moved
    from `sha`; returns the commit that landed."""

    def merge_pull_request(self, number: int, sha: str, method: str) -> str: ...


def authorize_merge(
    repo: Repo,
    execution_id: str,
    head_sha: str,
    *,
    base_tip: str,
    requester: str | None,
    ci: list[CIReport] | None,
    requirements: Iterable[Requirement] = REQUIREMENTS,
) -> list[Finding]:
    """The findings that allow merging `head_sha` for the execution, read again from the
    journal whatever triggered the merge; PromotionRefused naming each unmet one otherwise."""
    execution = journal.load(repo, execution_id)
    if execution.state != "succeeded":
        raise PromotionRefused(f"execution {execution_id} is {execution.state}: not promotable")
    if execution.head_commit != head_sha:
        journaled = (execution.head_commit or "none")[:10]
        raise PromotionRefused(
            f"execution {execution_id}: the head to merge is {head_sha[:10]}, but the "
            f"execution's is {journaled}: the branch moved"
        )
    findings = _judged(repo, execution, base_tip, requester, ci, requirements)
    refused = unmet(findings)
    if refused:
        raise PromotionRefused(
            f"execution {execution_id}: not promoted to prod, {len(refused)} requirement"
            f"{'s' * (len(refused) != 1)} unmet:",
            *(f"  ✘ {f}" for f in refused),
        )
    return findings


def merge(
    repo: Repo,
    merger: Merger,
    execution_id: str,
    pull_number: int,
    head_sha: str,
    method: MergeMethod,
    *,
    base_tip: str,
    requester: str | None,
    ci: list[CIReport] | None,
    requirements: Iterable[Requirement] = REQUIREMENTS,
) -> str:
    """Merge the execution's pull request once the gate allows it; the commit that landed.
    The head is pinned, so GitHub refuses a head that moved after the check."""
    authorize_merge(
        repo,
        execution_id,
        head_sha,
        base_tip=base_tip,
        requester=requester,
        ci=ci,
        requirements=requirements,
    )
    # the merge queue is handed over to later; until then queue-or-merge merges
    return merger.merge_pull_request(pull_number, head_sha, _api_method(method))


def _api_method(method: MergeMethod) -> str:
    return "merge" if method == "queue-or-merge" else method


@dataclass(frozen=True)
class Effect:
    """Whether the base branch holds the change approved, and how it landed."""

    ok: bool
    why: str
    landing: Landing | None


def verify(repo: Repo, execution: Execution, tip: str, merge_commit: str | None = None) -> Effect:
    """Whether the base branch at `tip` now holds exactly the approved change (merge commit,
    fast-forward, squash or rebase), nothing missing and nothing added. `merge_commit`: the
    commit GitHub says the merge made, for a squash or rebase git alone cannot recognize."""
    head = execution.head_commit
    gate = promotion_gate(execution)
    if head is None:
        return Effect(False, "the execution has no head commit", None)
    if gate is not None and gate.commit != head:
        return Effect(False, f"approved {gate.commit[:10]}, but the head is {head[:10]}", None)
    landed = _landing(repo, execution, tip, merge_commit)
    if landed is None:
        return Effect(False, f"the change of {head[:10]} is not on the base at {tip[:10]}", None)
    problems = _differences(repo, execution.base_commit, head, landed)
    if problems:
        return Effect(False, f"{landed.kind} {landed.commit[:10]}: " + "; ".join(problems), landed)
    return Effect(True, f"{landed.kind} {landed.commit[:10]} holds the approved change", landed)


def _landing(
    repo: Repo, execution: Execution, tip: str, merge_commit: str | None
) -> Landing | None:
    fresh = execution.model_copy(update={"landed": None, "state": "succeeded"})
    found = landings.find(repo, fresh, tip)
    if found is not None or merge_commit is None or not repo.has_object(merge_commit):
        return found
    on_base = repo.is_ancestor(merge_commit, tip)
    return landings.from_merge_commit(repo, fresh, merge_commit) if on_base else None


def _differences(repo: Repo, base: str, head: str, landed: Landing) -> list[str]:
    """How the landed change (onto → commit) differs from the approved one (base → head)."""
    approved = set(repo.changed_paths(base, head))
    brought = set(repo.changed_paths(landed.onto, landed.commit))
    problems = [f"{path} changed, which was not approved" for path in sorted(brought - approved)]
    expected = _Expected(repo, base, head, landed.onto)
    tree = repo.tree_of(landed.commit)
    for path in sorted(approved):
        if repo.blob_id(tree, path) != expected.blob(path):
            problems.append(f"{path} does not hold the approved change")
    return problems


class _Expected:
    """The approved change applied onto what the base held just before it landed: per file
    where the base left the file alone, by a three-way merge only where it did not."""

    def __init__(self, repo: Repo, base: str, head: str, onto: str) -> None:
        self._repo = repo
        self._trees = repo.tree_of(base), repo.tree_of(head), repo.tree_of(onto)
        self._merged: str | None = None

    def blob(self, path: str) -> str | None:
        base, head, onto = self._trees
        if self._repo.blob_id(onto, path) == self._repo.blob_id(base, path):
            return self._repo.blob_id(head, path)
        if self._merged is None:
            merged, _ = self._repo.undo(base, head, onto)
            self._merged = merged or ""
        return self._repo.blob_id(self._merged, path) if self._merged else "conflict"


def check(
    repo: Repo,
    execution_id: str,
    *,
    base_tip: str,
    requester: str | None,
    ci: list[CIReport] | None,
    requirements: Iterable[Requirement] = REQUIREMENTS,
) -> list[Finding]:
    """Every requirement judged for promoting the execution as journaled; reads only."""
    execution = journal.load(repo, execution_id)
    return _judged(repo, execution, base_tip, requester, ci, requirements)


def _judged(
    repo: Repo,
    execution: Execution,
    base_tip: str,
    requester: str | None,
    ci: list[CIReport] | None,
    requirements: Iterable[Requirement],
) -> list[Finding]:
    plan = journal.load_plan(repo, execution.id)
    return evaluate(repo, Promotion(execution, plan, base_tip, requester, ci), requirements)
