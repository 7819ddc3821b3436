"""Which steps a step's revert takes along: those that say they depend on it, and later steps
its revert really conflicts with. Sharing a file is not enough: the revert is tried (file by
file, then as a three-way merge, as `git revert` does) and steps are added only where it
conflicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tars_bot.git import Repo
from tars_bot.models import Execution, ExecutionPlan, StepResult

Message = Callable[[Execution, StepResult, str], str]


@dataclass(frozen=True)
class Steps:
    plan: ExecutionPlan
    results: dict[int, StepResult]

    def files(self, number: int) -> set[str]:
        result = self.results[number]
        healed = result.heal.changed_files if result.heal else []
        return {*result.changed_files, *healed, *(self.plan.steps[number - 1].files or [])}

    def declared(self, number: int) -> set[int]:
        """The steps a step's improvement says it depends on (not the order the planner added
        for steps that might touch the same file: a `run` step's real files tell that)."""
        by_name = {s.name: s.number for s in self.plan.steps}
        written = self.plan.improvement.steps
        step = next(s for s in written if s.name == self.plan.steps[number - 1].name)
        named = [written[d - 1].name if isinstance(d, int) else d for d in step.depends_on]
        return {by_name[name] for name in named}

    def _later(self, numbers: set[int], states: tuple[str, ...]) -> list[int]:
        return [
            s.number
            for s in self.plan.steps[min(numbers) :]
            if s.number not in numbers and self.results[s.number].state in states
        ]

    def declared_dependents(self, numbers: set[int]) -> set[int]:
        """Later applied steps that declare they depend on `numbers`, or on those that do."""
        closed = set(numbers)
        for number in self._later(numbers, ("applied",)):
            if self.declared(number) & closed:
                closed.add(number)
        return closed - numbers

    def sharing(self, numbers: set[int]) -> set[int]:
        """Later steps that declare a dependency or share a file with `numbers`, or with those
        that do: everything the revert could need, when the fewest do not replay."""
        closed = set(numbers)
        for number in self._later(numbers, ("applied", "skipped")):
            if self.declared(number) & closed or any(
                self.files(number) & self.files(n) for n in closed
            ):
                closed.add(number)
        return closed - numbers

    def applied(self, numbers: set[int]) -> list[StepResult]:
        """Those of `numbers` with commits on the branch, newest first: the order to revert."""
        found = [self.results[n] for n in sorted(numbers, reverse=True)]
        return [s for s in found if s.state == "applied"]

    def touching(self, paths: set[str], numbers: set[int]) -> set[int]:
        """Later applied steps that change one of `paths`."""
        return {n for n in self._later(numbers, ("applied",)) if self.files(n) & paths}

    def skipped_sharing(self, numbers: set[int]) -> set[int]:
        """Later skipped steps sharing a file with `numbers`: without their change, theirs may
        not be empty, so a replay leaves them out too (they have no commit to revert)."""
        files = set().union(*(self.files(n) for n in numbers))
        return {n for n in self._later(numbers, ("skipped",)) if self.files(n) & files}


def pick(repo: Repo, commit: str, tree: str) -> str | None:
    """`tree` with `commit`'s change applied: file by file, else by a three-way merge (later
    work on other lines of the same files is kept); None when it conflicts."""
    picked = repo.cherry_pick(commit, tree)
    if picked is None:
        picked, _ = repo.undo(repo.parents(commit)[0], commit, tree)
    return picked


def revert_commits(
    repo: Repo, execution: Execution, steps: list[StepResult], message: Message
) -> tuple[str | None, list[str]]:
    """New commits on the execution's head reverting `steps` in order (each one's heal first):
    (the new head, []), or (None, the paths where a revert conflicts)."""
    head = execution.head_commit or ""
    for step in steps:
        for commit in reversed(step.commits):
            tree = repo.revert(commit, head)  # the fast path, file by file
            if tree is None:
                tree, conflicts = repo.undo(commit, repo.parents(commit)[0], repo.tree_of(head))
                if tree is None:
                    return None, conflicts
            head = repo.create_commit(tree, [head], message(execution, step, commit))
    return head, []


def revert(
    repo: Repo, execution: Execution, steps: Steps, number: int, message: Message
) -> tuple[set[int], str | None]:
    """The steps that go with step `number` and the head reverting them (None when even all
    the later steps it conflicts with do not make it apply). Conflicting steps are added one
    at a time, newest first (the likeliest to build on it), then each is left out again where
    the revert applies without it: the fewest found, not the files' whole history."""
    declared = {number} | steps.declared_dependents({number})
    added: list[int] = []

    def attempt(numbers: set[int]) -> tuple[str | None, list[str]]:
        return revert_commits(repo, execution, steps.applied(numbers), message)

    def targets() -> set[int]:
        chosen = set(added)
        return declared | chosen | steps.declared_dependents(chosen) if chosen else declared

    head, conflicts = attempt(targets())
    while head is None:
        candidates = sorted(steps.touching(set(conflicts), targets()), reverse=True)
        if not candidates:
            return targets(), None
        added.append(candidates[0])
        head, conflicts = attempt(targets())
    for number_added in list(added):
        added.remove(number_added)
        if attempt(targets())[0] is None:
            added.append(number_added)
    head, _ = attempt(targets())  # commits are objects only: no ref moved until the caller's
    return targets(), head


def choose(
    repo: Repo,
    execution: Execution,
    steps: Steps,
    number: int,
    message: Message,
    replays: Callable[[set[int], str], bool],
) -> tuple[set[int], str | None]:
    """The steps reverted with step `number` and the head that reverts them, verified by
    `replays` (the plan replayed without them gives that head's tree): the fewest first,
    else all that share its files; (all those, None) when neither can be verified."""
    targets, head = revert(repo, execution, steps, number, message)
    # a skipped step sharing a file would have changed it without them: it goes along too
    targets |= steps.skipped_sharing(targets)
    if head is not None and replays(targets, head):
        return targets, head
    targets = {number} | steps.sharing({number})
    head, _ = revert_commits(repo, execution, steps.applied(targets), message)
    return targets, head if head is not None and replays(targets, head) else None
