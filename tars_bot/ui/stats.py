"""`tars-bot stats` for the terminal: outcomes, what fails most, check times, savings, weeks."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tars_bot.ui.terminal import shown
from tars_bot.ui.wording import words


def stats_renderable(summary: dict[str, Any]) -> Group:
    """`tars-bot stats`: outcomes, what fails most, check times, what search and cache saved,
    and executions per week by outcome."""
    rate = summary["success_rate"]
    lines: list[Text | Table] = [
        Text.assemble(
            ("Executions ", "bold"),
            str(summary["executions"]),
            f"  success rate {rate:.0%}" if rate is not None else "",
            ("  " + ", ".join(f"{words(k)} {v}" for k, v in summary["by_state"].items()), "dim"),
        ),
        Text.assemble(
            ("Steps ", "bold"),
            f"{summary['steps']}, {summary['steps_that_broke_a_check']} broke a check, "
            f"{summary['healed_steps']} healed",
        ),
    ]
    for title, key in (("paths", "failing_paths"), ("kinds", "failing_kinds")):
        if summary[key]:
            table = Table(title=f"failing most: {title}", show_edge=False, title_justify="left")
            for column in ("", "broke", "steps", "rate"):
                table.add_column(column, justify="left" if not column else "right")
            for row in summary[key]:
                table.add_row(shown(row["name"]), str(row["broke"]), str(row["steps"]),
                              f"{row['rate']:.0%}")  # fmt: skip
            lines.append(table)
    if summary["checks"]:
        table = Table(title="checks", show_edge=False, title_justify="left")
        for column in ("", "runs", "failed", "mean"):
            table.add_column(column, justify="left" if not column else "right")
        for row in summary["checks"]:
            table.add_row(shown(row["check"]), str(row["runs"]), str(row["failed"]),
                          f"{row['mean_s']:.2f}s")  # fmt: skip
        lines.append(table)
    search, cache = summary["culprit_search"], summary["cache"]
    lines.append(
        Text.assemble(
            ("Saved ", "bold"),
            f"culprit search: {search['runs']} nox runs where checking each step would take "
            f"{search['runs_checking_each_step']} (about {search['seconds_saved']:g}s); "
            f"cache: {cache['hits']} results reused (about {cache['seconds_saved']:g}s)",
        )
    )
    lines += _weeks_chart(summary["weeks"])
    return Group(*lines)


WEEK_STYLES = {"succeeded": "green", "failed": "red", "unvalidated": "yellow"}


def _weeks_chart(weeks: dict[str, dict[str, int]], width: int = 40) -> list[Text]:
    """Executions per week, one bar each, coloured by outcome."""
    if not weeks:
        return []
    most = max(sum(outcomes.values()) for outcomes in weeks.values())
    rows = [Text("executions per week", style="bold")]
    for week, outcomes in list(weeks.items())[-12:]:
        bar = Text(f"{week} ")
        for outcome, count in sorted(outcomes.items()):
            cells = max(1, round(count * width / most))
            bar.append("█" * cells, style=WEEK_STYLES.get(outcome, "dim"))
        bar.append(" " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())), style="dim")
        rows.append(bar)
    return rows
