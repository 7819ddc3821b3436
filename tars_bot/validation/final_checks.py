"""After the steps: final checks (bisect or each), drop-step, measured benefits, API check."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tars_bot.config import Config, config_at
from tars_bot.errors import TarsError
from tars_bot.execution.workspace import Workspace
from tars_bot.git import Repo
from tars_bot.models import (
    Benefit,
    BenefitResult,
    CheckResult,
    Culprit,
    Execution,
    ExecutionPlan,
    Limits,
    Probe,
    listing,
)
from tars_bot.records import journal, learning, outcomes
from tars_bot.rollback import undo
from tars_bot.validation import benefits, tests_results
from tars_bot.validation.validator import Validator

LOG_KEEP = 1 << 20  # bytes of a check's output kept in its log: the end, where verdicts are


class CheckProgress(Protocol):
    """The part of a live display (`system.Progress`) that shows checks."""

    def check_started(self, check: str, commit: str, step: int | None) -> None: ...
    def check_finished(self, result: CheckResult) -> None: ...
    def output(self, chunk: bytes) -> None: ...


class ProbeLog:
    """Every check the validator runs or finds cached, kept as Probes, each run's output in the
    journal (`logs/probe-N.log`); passed on to the live display with the step of its commit."""

    def __init__(self, record: journal.Record, progress: CheckProgress) -> None:
        self.record, self.progress = record, progress
        self.probes: list[Probe] = []
        self.aliases: dict[str, int] = {}  # commits replayed to stand for a step's
        self._output = bytearray()
        self._dropped = 0

    def step_of(self, commit: str) -> int | None:
        """The step whose commit `commit` is; 0 for the base, None for any other commit."""
        execution = self.record.execution
        if commit == execution.base_commit:
            return 0
        if commit in self.aliases:
            return self.aliases[commit]
        return next((s.number for s in execution.steps if commit in s.commits), None)

    def started(self, check: str, commit: str) -> None:
        self._output.clear()
        self._dropped = 0
        self.progress.check_started(check, commit, self.step_of(commit))

    def output(self, chunk: bytes) -> None:
        self._output += chunk
        if len(self._output) > 2 * LOG_KEEP:
            self._dropped += len(self._output) - LOG_KEEP
            del self._output[:-LOG_KEEP]
        self.progress.output(chunk)

    def finished(self, commit: str, result: CheckResult) -> None:
        log = None
        if not result.cached:  # a cached result ran in another execution, with its own log
            log = f"logs/probe-{len(self.probes) + 1}.log"
            omitted = (
                f"[... {self._dropped} bytes omitted ...]\n".encode() if self._dropped else b""
            )
            self.record.save(self.record.execution, {log: omitted + bytes(self._output)})
        probe = Probe(
            check=result.check,
            commit=commit,
            step=self.step_of(commit),
            status=result.status,
            summary=result.summary,
            duration_s=result.duration_s,
            cached=result.cached,
            log=log,
        )
        self.probes.append(probe)
        self.progress.check_finished(result)

    def since(self, start: int, check: str) -> list[Probe]:
        return [p for p in self.probes[start:] if p.check == check]


@dataclass(frozen=True)
class Findings:
    """The final checks on the tip; the culprits of the failing ones (all blaming the earliest
    step found), or why the checks could not tell, in which case nothing is blamed."""

    results: list[CheckResult]
    culprits: list[Culprit] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Failure:
    """Why an execution does not succeed, and the state it ends in."""

    reason: str
    state: Literal["rolled_back", "unvalidated"] = "rolled_back"


def _applied(execution: Execution) -> list[tuple[int, str]]:
    """Per applied step, its last commit: a healed step's tree is its heal commit's."""
    return [(s.number, s.commits[-1]) for s in execution.steps if s.state == "applied"]


def _probe_commits(repo: Repo, plan: ExecutionPlan, execution: Execution) -> list[tuple[int, str]]:
    """Per applied step, a commit holding the tree up to that step. Once steps were dropped,
    a later step's own commit still holds their change: probing it would blame the next step
    for what was dropped. So the trees are replayed without them (commits no ref names)."""
    applied = _applied(execution)
    dropped = {s.number for s in execution.steps if s.state == "reverted"}
    if not dropped:
        return applied
    probes, parent = [], plan.base.commit
    for number, _ in applied:
        later = {s.number for s in execution.steps if s.number > number}
        tree = undo.replay(repo, plan, execution, without=dropped | later)
        if tree is None:
            return applied  # a kept step needs a dropped one: nothing better to probe
        parent = repo.create_commit(tree, [parent], f"tars-bot probe: up to step {number}")
        probes.append((number, parent))
    return probes


@dataclass
class Baseline:
    """The checks on the base commit, each run once when first needed: a step is blamed for
    the failures it adds, never for those the base has already."""

    validator: Validator

    def of(self, check: str) -> CheckResult:
        return self.validator.on_base(check)

    def adds_failures(self, result: CheckResult) -> bool | None:
        """Whether `result` fails more than the base does; None when that cannot be told."""
        return tests_results.adds_failures(result, self.of(result.check))

    def judge(self, result: CheckResult) -> CheckResult | str | None:
        """A failed `result` (probing the base first): passed with the base's failures named
        when it adds none; None when it adds some; why not, when that cannot be told."""
        on_base = self.of(result.check)
        if on_base.status == "error":
            return f"{on_base.describe()} on the base"
        adds = tests_results.adds_failures(result, on_base)
        if adds is None:
            return tests_results.cannot_compare(result)
        return None if adds else tests_results.with_known_failures(result, on_base)


def _culprit(
    step: int | None, result: CheckResult, probes: list[Probe], on_base: CheckResult
) -> Culprit:
    ran = [p for p in probes if not p.cached]
    new, known = tests_results.new_failures(result, on_base)
    return Culprit(
        step=step,
        check=result.check,
        summary=result.summary,
        result=result,
        runs=len(ran),
        duration_s=round(sum(p.duration_s for p in ran), 3),
        probes=probes,
        new_failures=new,
        known_failures=known,
    )


def _cannot_tell(results: list[CheckResult]) -> str | None:
    """Why `results` say nothing of the tree: some check could not run. None when all ran."""
    errored = [r.describe() for r in results if r.status == "error"]
    if not errored:
        return None
    failed = [r.check for r in results if r.status == "failed"]
    untold = f"; not bisected meanwhile: {', '.join(failed)} failed" if failed else ""
    return "; ".join(errored) + untold


def _earliest(culprits: list[Culprit]) -> list[Culprit]:
    if not culprits:
        return []
    first = min(-1 if c.step is None else c.step for c in culprits)
    return [c for c in culprits if (-1 if c.step is None else c.step) == first]


def _judged(results: list[CheckResult], base: Baseline) -> list[CheckResult] | str:
    """`results`, each failed one passed instead where the base fails the same; or why a
    failure cannot be judged."""
    judged = []
    for result in results:
        verdict = base.judge(result) if not result.passed else result
        if isinstance(verdict, str):
            return verdict
        judged.append(verdict or result)
    return judged


def _after_each(
    validator: Validator,
    plan: ExecutionPlan,
    applied: list[tuple[int, str]],
    probes: ProbeLog,
    start: int,
    base: Baseline,
) -> Findings | None:
    """Strategy `each`: the final checks on every step's commit, up to the first one that
    fails more than the base."""
    for number, commit in applied:
        results = validator.run(commit, plan.validation.final)
        if error := _cannot_tell(results):
            return Findings(results, error=error)
        judged = _judged(results, base)
        if isinstance(judged, str):
            return Findings(results, error=judged)
        if failed := [r for r in judged if not r.passed]:
            found = [
                _culprit(number, r, probes.since(start, r.check), base.of(r.check)) for r in failed
            ]
            return Findings(judged, found)
    return None


def _bisect(
    validator: Validator,
    base: Baseline,
    applied: list[tuple[int, str]],
    failing: CheckResult,
    probes: ProbeLog,
    start: int,
    weights: list[float] | None = None,
) -> Culprit | str:
    """The culprit of a check failing on the tip more than on the base (the first step that
    adds failures), or why bisecting it could not tell."""
    commits = [commit for _, commit in applied]
    if not commits:
        return f"{failing.describe()} with no step applied"
    index, result = validator.first_failing(commits, failing, base.adds_failures, weights)
    step = applied[index][0]
    if result.status == "error":
        return f"bisecting {failing.check}: {result.describe()} on step {step}'s commit"
    if base.adds_failures(result) is None:
        return f"bisecting: {tests_results.cannot_compare(result)} (step {step}'s commit)"
    return _culprit(step, result, probes.since(start, failing.check), base.of(failing.check))


def find_culprits(
    validator: Validator,
    plan: ExecutionPlan,
    execution: Execution,
    probes: ProbeLog,
    base: Baseline | None = None,
) -> Findings:
    """The final checks on the tip and, for those failing more than on the base (run first,
    so a red base is known after one run), the first step that adds failures."""
    base = base or Baseline(validator)
    start = len(probes.probes)
    applied = _probe_commits(validator.repo, plan, execution)
    probes.aliases.update((commit, number) for number, commit in applied)
    if plan.validation.strategy == "each" and (
        found := _after_each(validator, plan, applied, probes, start, base)
    ):
        return found
    results = validator.run(execution.head_commit or plan.base.commit, plan.validation.final)
    if error := _cannot_tell(results):
        return Findings(results, error=error)
    judged = _judged(results, base)
    if isinstance(judged, str):
        return Findings(results, error=judged)
    culprits = []
    weights = _weights(validator.repo, plan, applied)
    for failing in (r for r in judged if not r.passed):
        culprit = _bisect(validator, base, applied, failing, probes, start, weights)
        if isinstance(culprit, str):
            return Findings(judged, error=culprit)
        culprits.append(culprit)
    return Findings(judged, _earliest(culprits))


def _weights(repo: Repo, plan: ExecutionPlan, applied: list[tuple[int, str]]) -> list[float] | None:
    """How likely each applied step is to be the culprit, from the outcome index; None
    without history (plain bisection)."""
    risks = learning.risks(plan, outcomes.totals(repo))
    if risks is None:
        return None
    by_step = {risk.step: risk for risk in risks}
    return learning.culprit_weights([by_step[number] for number, _ in applied])


def describe(culprit: Culprit, execution: Execution) -> str:
    if culprit.step is None:  # records from before the base was compared
        return f"{culprit.result.describe()} on the base commit"
    name = next(s.name for s in execution.steps if s.number == culprit.step)
    text = f'step {culprit.step} "{name}": {culprit.result.describe()}'
    if culprit.new_failures:
        count = len(culprit.new_failures)
        text += f"; {count} new failure{'s' if count != 1 else ''}: {listing(culprit.new_failures)}"
    if culprit.known_failures:
        count = len(culprit.known_failures)
        text += f"; {count} already failing on the base: {listing(culprit.known_failures)}"
    return text


def _explain_drop(before: Execution, after: Execution, culprits: list[Culprit]) -> Execution:
    """`after` with a reason on each step the drop reverted: what it broke, or what it built on."""
    step = culprits[0].step
    broke = f"broke {', '.join(c.check for c in culprits)}"
    was = {s.number: s.state for s in before.steps}
    steps = [
        s.model_copy(update={"reason": broke if s.number == step else f"built on step {step}"})
        if s.state == "reverted" and was[s.number] != "reverted"
        else s
        for s in after.steps
    ]
    return after.model_copy(update={"steps": steps})


def validate(
    validator: Validator,
    plan: ExecutionPlan,
    record: journal.Record,
    space: Workspace,
    probes: ProbeLog,
) -> Failure | None:
    """Run the final checks, dropping culprit steps when the plan says so. Records the results
    and culprits in the journal; returns why the execution does not succeed, or None."""
    base = Baseline(validator)
    while True:
        execution = record.execution
        found = find_culprits(validator, plan, execution, probes, base)
        culprits = [*execution.culprits, *found.culprits]
        record.update(checks=found.results, culprits=culprits, checks_stale=None)
        if found.error is not None:
            return Failure(f"could not validate: {found.error}", "unvalidated")
        if not found.culprits:
            return None
        step, reason = found.culprits[0].step, describe(found.culprits[0], execution)
        if plan.improvement.on_failure != "drop-step" or step is None:
            return Failure(reason)
        try:
            dropped = undo.revert_steps(validator.repo, record, step, cascade=True)
        except TarsError as e:
            return Failure(f"{reason}; dropping it failed: {e}")
        record.save(_explain_drop(execution, dropped, found.culprits))
        space.head = dropped.head_commit or space.head


def measure_benefits(
    plan: ExecutionPlan, space: Workspace, config: Config, limits: Limits
) -> tuple[list[BenefitResult], str | None]:
    """Measured benefits and the API check, base vs tip; (benefit results, failure or None)."""
    measured = [b for b in plan.improvement.expected_benefits if isinstance(b, Benefit)]
    packages = plan.validation.api
    if not measured and not packages:
        return [], None
    base = space.extra_checkout("base", plan.base.commit).path
    tip = space.checkout()
    tip.move_to(space.head)
    try:
        results = [
            benefits.measure(b, base, tip.path, space.repo, config, limits) for b in measured
        ]
    except benefits.MeasureError as e:
        return [], str(e)
    for result in results:
        if result.required and result.met is False:
            return results, (
                f"benefit {result.name!r} not met: {result.change:+.1%} (target {result.expected})"
            )
    breakages = [b for package in packages for b in benefits.api_breakages(package, base, tip.path)]
    if breakages:
        listed = "; ".join(breakages[:10])
        return results, f"API check: {len(breakages)} breaking change(s): {listed}"
    return results, None


def _against(result: CheckResult, base: Baseline) -> CheckResult:
    """`result`, passed with its known failures where the base fails the same tests."""
    if result.status != "failed":
        return result
    judged = base.judge(result)
    return judged if isinstance(judged, CheckResult) else result


def check_again(
    repo: Repo, execution_id: str, checks: list[str] | None, *, fresh: bool
) -> list[CheckResult]:
    """Run checks (default: the plan's final ones) on the execution's result again; results
    already known for that tree come from the cache."""
    record = journal.Record.resume(repo, execution_id)
    execution = record.execution
    if execution.in_flight or execution.head_commit is None:
        raise TarsError(f"execution {execution_id} has no finished result to validate")
    plan = journal.load_plan(repo, execution_id)
    checks = checks or plan.validation.final
    if not checks:
        raise TarsError("nothing to validate: the plan has no final checks; name --sessions")
    config = config_at(repo, plan.base.commit)
    name = f"{execution_id}+validate"
    with Workspace(repo, name, execution.head_commit, None, config.worktree_pool) as space:
        validator = Validator(
            repo, config, config.limits, space.checkout, plan.base.commit, fresh=fresh
        )
        with contextlib.closing(validator):
            base = Baseline(validator)
            results = [_against(r, base) for r in validator.run(execution.head_commit, checks)]
    record.update(checks=results, checks_stale=None)
    return results
