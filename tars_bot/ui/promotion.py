"""The requirements of a promotion as people and programs read them."""

from __future__ import annotations

from tars_bot.models.output import PromotionCheck, RequirementFinding
from tars_bot.stages.requirements import Finding


def as_text(findings: list[Finding]) -> str:
    """One line per requirement: ✔ or ✘, its name, and why."""
    return "".join(f"{'✔' if f.met else '✘'} {f}\n" for f in findings)


def as_json(execution_id: str, head: str | None, findings: list[Finding]) -> PromotionCheck:
    return PromotionCheck(
        execution=execution_id,
        head_commit=head,
        promotable=all(f.met for f in findings),
        requirements=[
            RequirementFinding(name=f.requirement, met=f.met, why=f.why) for f in findings
        ],
    )
