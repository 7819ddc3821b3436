"""Renderings of plans for people (rich text) and scripts (JSON)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tars_bot.models import ExecutionPlan, PlannedStep


def _action_summary(step: PlannedStep) -> str:
    action = step.action
    match action.kind:
        case "run":
            return f"run: {action.command}"  # type: ignore[union-attr]
        case "patch":
            return f"patch: {len(step.files or [])} file(s)"
        case _:
            return f"{action.kind}: {', '.join(step.files or [])}"


def plan_renderable(plan: ExecutionPlan) -> Group:
    improvement = plan.improvement
    header = Text.assemble(
        ("Plan ", "bold"),
        (improvement.id or "", "bold cyan"),
        f": {improvement.title}\n",
        ("base ", "dim"),
        f"{plan.base.ref} ({plan.base.commit[:10]})  ",
        ("branch ", "dim"),
        plan.branch,
    )
    table = Table(show_edge=False, pad_edge=False, expand=False)
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("action")
    table.add_column("after", justify="right")
    table.add_column("scope")
    table.add_column("checks")
    for step in plan.steps:
        table.add_row(
            str(step.number),
            escape(step.name),
            escape(_action_summary(step)),
            ", ".join(map(str, step.depends_on)) or "-",
            escape(", ".join(step.scope)),
            escape(", ".join(step.checks)) or "-",
        )
    parts: list[Text | Table] = [header, table]
    final = ", ".join(plan.validation.final)
    parts.append(
        Text.assemble(
            ("final checks ", "dim"),
            final or "none",
            f" ({plan.validation.strategy})" if final else "",
        )
    )
    for warning in plan.warnings:
        parts.append(Text.assemble(("warning: ", "yellow bold"), warning))
    return Group(*parts)


def print_plan(plan: ExecutionPlan, console: Console) -> None:
    console.print(plan_renderable(plan))
