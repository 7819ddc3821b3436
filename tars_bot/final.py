"""After the steps: final checks (bisect or each), drop-step, measured benefits, API check."""

from __future__ import annotations

from dataclasses import dataclass

from tars_bot import benefits, journal, rollback
from tars_bot.config import Config
from tars_bot.errors import TarsError
from tars_bot.models import Benefit, BenefitResult, CheckResult, Execution, ExecutionPlan, Limits
from tars_bot.validator import Validator
from tars_bot.workspace import Workspace


@dataclass(frozen=True)
class Culprit:
    step: int | None  # None: the check fails on the base already
    check: CheckResult


def _applied(execution: Execution) -> list[tuple[int, str]]:
    return [(s.number, s.commit or "") for s in execution.steps if s.state == "applied"]


def find_culprit(
    validator: Validator, plan: ExecutionPlan, execution: Execution
) -> tuple[list[CheckResult], Culprit | None]:
    """The final checks on the tip and, if one fails, the first step at which it fails."""
    applied = _applied(execution)
    commits = [commit for _, commit in applied]
    tip = execution.head_commit or plan.base.commit
    if plan.validation.strategy == "each":
        for number, commit in applied:
            results = validator.run(commit, plan.validation.final)
            if failed := next((r for r in results if not r.passed), None):
                return results, Culprit(number, failed)
        return validator.run(tip, plan.validation.final), None
    results = validator.run(tip, plan.validation.final)
    failing = [r for r in results if not r.passed]
    if not failing:
        return results, None
    if errored := next((r for r in failing if r.status == "error"), None):
        return results, Culprit(None, errored)  # nothing to bisect when the check cannot run
    if not commits:
        return results, Culprit(None, failing[0])
    culprits = []
    for check in failing:
        index = validator.first_failing(plan.base.commit, commits, check.check)
        culprits.append(Culprit(None if index is None else applied[index][0], check))
    return results, min(culprits, key=lambda c: -1 if c.step is None else c.step)


def describe(culprit: Culprit, execution: Execution) -> str:
    if culprit.step is None:
        where = "on the base commit" if culprit.check.status != "error" else ""
        return f"{culprit.check.describe()} {where}".strip()
    name = next(s.name for s in execution.steps if s.number == culprit.step)
    return f'step {culprit.step} "{name}": {culprit.check.describe()}'


def validate(
    validator: Validator, plan: ExecutionPlan, record: journal.Record, space: Workspace
) -> str | None:
    """Run the final checks, dropping culprit steps when the plan says so. Records the results
    in the journal; returns why the execution fails, or None."""
    while True:
        execution = record.execution
        results, culprit = find_culprit(validator, plan, execution)
        record.save(execution.model_copy(update={"checks": results}))
        if culprit is None:
            return None
        if plan.improvement.on_failure != "drop-step" or culprit.step is None:
            return describe(culprit, execution)
        try:
            dropped = rollback.revert_steps(validator.repo, record, culprit.step, cascade=True)
        except TarsError as e:
            return f"{describe(culprit, execution)}; dropping it failed: {e}"
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
        results = [benefits.measure(b, base, tip.path, config, limits) for b in measured]
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
