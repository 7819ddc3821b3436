"""Split privilege: the job that runs an improvement holds no write token; it hands a git bundle
(the branch and its journal) to a job that does, which believes nothing in it it cannot check.

The check is against the plan computed there, from the default branch: the bundle holds exactly
the plan's branch and one journal; the branch is a straight line from the planned base of
tars-bot's commits only (its trailers, the plan's steps in order, each maybe followed by its heal,
reverts of those commits); each step and heal commit changes only paths inside its step's scope
and none protected; the journal holds only records of this execution, whose plan is the same
plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from tars_bot.config import config_at
from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Execution, ExecutionPlan, Improvement
from tars_bot.paths import Scope
from tars_bot.planning import planner
from tars_bot.records import journal, outcomes
from tars_bot.ui import untrusted

INCOMING = "refs/tars-bot/incoming/"  # where a bundle's refs wait while they are checked
JOURNAL_FILES = ("execution.json", "plan.json")


class HandoffRefused(TarsError):
    """The bundle is not what the plan allows: nothing of it is pushed."""


@dataclass(frozen=True)
class Handoff:
    """A checked bundle, its refs brought in under their real names."""

    execution: Execution
    branch: str
    head: str


def write_bundle(repo: Repo, execution: Execution, path: Path) -> None:
    """The execution's branch and journal as a bundle: what they add to the base."""
    if execution.state not in ("succeeded", "parked") or not execution.branch:
        raise TarsError(f"execution {execution.id} is {execution.state}: nothing to hand off")
    refs = [f"refs/heads/{execution.branch}", journal.EXECUTIONS + execution.id]
    repo.create_bundle(path, refs, exclude=execution.base_commit)


def receive(repo: Repo, path: Path, improvement: Improvement, trusted: str) -> Execution:
    """Take a bundle from a job without write access: checked against the plan of
    `improvement` computed here, on a base that is `trusted` or behind it, before its branch
    and journal get their names; the outcome index follows. Raises HandoffRefused naming
    what is wrong."""
    tip, _ = repo.resolve(trusted)

    def plan_at(base: str) -> tuple[ExecutionPlan, Scope]:
        plan = planner.plan(repo, improvement, base_ref=base)
        return plan, Scope(config_at(repo, base).protected)

    received = receive_bundle(repo, path, tip, plan_at).execution
    head = repo.ref(journal.EXECUTIONS + received.id)
    outcomes.reconcile(repo, {received.id: head} if head else {})
    return received


def receive_bundle(
    repo: Repo, path: Path, trusted: str, plan_at: Callable[[str], tuple[ExecutionPlan, Scope]]
) -> Handoff:
    """Check the bundle against the plan computed here (`plan_at(base)`: the plan, and the
    protected paths of the configuration there) on the base it names, which must be `trusted`
    (the default branch) or behind it; only when everything holds are its branch and journal
    given their names. Raises HandoffRefused, having pushed nothing."""
    refs = repo.bundle_refs(path)
    journals = [r for r in refs if r.startswith(journal.EXECUTIONS)]
    branches = [r for r in refs if r.startswith("refs/heads/")]
    if len(journals) != 1 or len(branches) != 1 or len(refs) != 2:
        listed = ", ".join(sorted(refs))
        raise HandoffRefused(f"bundle: holds {listed}; expected one branch and its journal")
    execution_id = journals[0].removeprefix(journal.EXECUTIONS)
    quarantine = f"{INCOMING}{execution_id}/"
    try:
        repo.fetch_bundle(
            path, [f"{branches[0]}:{quarantine}branch", f"{journals[0]}:{quarantine}journal"]
        )
    except TarsError as e:  # e.g. its prerequisite, the base, is not here
        raise HandoffRefused(f"bundle: cannot be read here: {e}") from None
    try:
        base = _claimed_base(repo, refs[journals[0]])
        if not repo.has_object(base) or not repo.is_ancestor(base, trusted):
            raise HandoffRefused(f"bundle: its base {base[:10]} is not on the default branch")
        plan, protected = plan_at(base)
        if branches[0] != f"refs/heads/{plan.branch}":
            raise HandoffRefused(f"bundle: holds {branches[0]}, not the plan's {plan.branch}")
        head, record = refs[branches[0]], refs[journals[0]]
        _check_branch(repo, plan, execution_id, head, protected)
        execution = _check_journal(repo, plan, execution_id, record, head)
        _move(repo, branches[0], head)
        _move(repo, journals[0], record)
    finally:
        for name in ("branch", "journal"):
            repo.update_ref(quarantine + name, None, repo.ref(quarantine + name))
    return Handoff(execution, plan.branch, head)


def _claimed_base(repo: Repo, record: str) -> str:
    try:
        return ExecutionPlan.model_validate_json(
            repo.commit_file(record, "plan.json") or b""
        ).base.commit
    except ValidationError:
        raise HandoffRefused("bundle: its journal holds no readable plan") from None


def _check_branch(
    repo: Repo, plan: ExecutionPlan, execution_id: str, head: str, protected: Scope
) -> None:
    """A straight line from the base, of the plan's steps in order (each maybe followed by its
    heal) and reverts of them."""
    base = plan.base.commit
    if not repo.is_ancestor(base, head):
        raise HandoffRefused(
            f"branch {plan.branch}: does not start at the planned base {base[:10]}"
        )
    made: dict[int, dict[str, set[str]]] = {}  # step number -> {its commit and heal's: paths}
    parent = base
    for commit in repo.commits_between(base, head):
        where = f"branch {plan.branch}: commit {commit[:10]}"
        if repo.parents(commit) != [parent]:
            raise HandoffRefused(f"{where} is not on a straight line from the base")
        number, reverted, heal = _tars_bot_step(repo, plan, execution_id, commit, where)
        changed = set(repo.changed_paths(parent, commit))
        scope = plan.steps[number - 1].scope
        if heal:
            if list(made.get(number, {})) != [parent]:  # right after its step, once
                raise HandoffRefused(f"{where} heals step {number}, but does not follow it")
            _check_paths(scope, protected, changed, f"{where}: the heal of step {number}")
            made[number][commit] = changed
        elif reverted is None:
            if made and number <= max(made):
                raise HandoffRefused(f"{where}: step {number} out of the plan's order")
            _check_paths(scope, protected, changed, f"{where}: step {number}")
            made[number] = {commit: changed}
        elif reverted not in made.get(number, {}) or not changed <= made[number][reverted]:
            raise HandoffRefused(f"{where} reverts what step {number} did not do")
        parent = commit


def _tars_bot_step(
    repo: Repo, plan: ExecutionPlan, execution_id: str, commit: str, where: str
) -> tuple[int, str | None, bool]:
    """(step number, the commit it reverts or None, whether it heals the step) from a
    commit's trailers."""
    trailers = repo.trailers(commit)
    mine = (trailers.get("Tars-Execution"), trailers.get("Tars-Improvement"))
    if mine != (execution_id, plan.improvement.id):
        raise HandoffRefused(f"{where} was not made by tars-bot for execution {execution_id}")
    reverted = trailers.get("Tars-Revert-Of")  # a revert names its step alone: "Tars-Step: 2"
    number = _step_number(trailers.get("Tars-Step", ""), len(plan.steps), reverted is not None)
    if number is None:
        step = trailers.get("Tars-Step")
        raise HandoffRefused(f"{where}: Tars-Step {step!r} is no step of the plan")
    heal = trailers.get("Tars-Heal-Of")
    if heal is not None and (reverted is not None or heal != str(number)):
        raise HandoffRefused(f"{where}: Tars-Heal-Of {heal!r} is not its step {number}")
    return number, reverted, heal is not None


def _check_paths(scope: list[str], protected: Scope, changed: set[str], what: str) -> None:
    if forbidden := sorted(p for p in changed if protected.covers(p)):
        raise HandoffRefused(f"{what} changed {untrusted.path(forbidden[0])}, a protected path")
    if outside := sorted(p for p in changed if not Scope(scope).covers(p)):
        raise HandoffRefused(f"{what} changed {untrusted.path(outside[0])}, outside its scope")


def _step_number(trailer: str, total: int, revert: bool) -> int | None:
    number, _, of = trailer.partition("/")
    if not number.isdigit() or of != ("" if revert else str(total)):
        return None
    return int(number) if 1 <= int(number) <= total else None


def _check_journal(
    repo: Repo, plan: ExecutionPlan, execution_id: str, record: str, head: str
) -> Execution:
    branch_commits = set(repo.commits_between(plan.base.commit, head))
    for commit in repo.commits_between(plan.base.commit, record):
        if commit in branch_commits:
            continue
        extra = [
            p
            for p in repo.tree_paths(commit)
            if p not in JOURNAL_FILES and not p.startswith("logs/")
        ]
        if extra:
            raise HandoffRefused(
                f"journal {execution_id}: commit {commit[:10]} is no record ({extra[0]})"
            )
    try:
        execution = Execution.model_validate_json(repo.commit_file(record, "execution.json") or b"")
        recorded = ExecutionPlan.model_validate_json(repo.commit_file(record, "plan.json") or b"")
    except ValidationError:
        raise HandoffRefused(f"journal {execution_id}: its records cannot be read") from None
    # the same plan, whatever the base was called where it was made ("HEAD", "main")
    named_here = recorded.base.model_copy(update={"ref": plan.base.ref})
    if recorded.model_copy(update={"base": named_here}).compute_digest() != plan.compute_digest():
        raise HandoffRefused(f"journal {execution_id}: its plan is not the plan computed here")
    if (execution.id, execution.head_commit) != (execution_id, head) or not _ended(execution):
        raise HandoffRefused(
            f"journal {execution_id}: does not record a success (or a park) ending at {head[:10]}"
        )
    return execution


def _ended(execution: Execution) -> bool:
    """Succeeded, or parked at a pending gate on its head: the branch up to the gate is
    published, and a comment decides on it (gate_verbs.py)."""
    gate, head = execution.gate, execution.head_commit
    if execution.state == "parked":
        return gate is not None and gate.status == "pending" and gate.commit == head
    return execution.state == "succeeded"


def _move(repo: Repo, name: str, target: str) -> None:
    """Give the checked ref its name: new, moved on from where it is, or moved from a commit
    tars-bot made before."""
    current = repo.ref(name)
    # moving on from it: a parked execution's journal and branch, continued after its gate
    continued = current is not None and repo.is_ancestor(current, target)
    if current not in (None, target) and not continued and not journal.made_by_tars(repo, current):
        raise HandoffRefused(f"{name} exists here with commits tars-bot did not make")
    repo.update_ref(name, target, current)
