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
    if summary.get("rolled_back_later"):
        lines.append(
            Text.assemble(
                ("Rolled back later ", "bold"),
                f"{summary['rolled_back_later']}, after they succeeded (counted as succeeded)",
            )
        )
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
    lines += [_search_line(summary["culprit_search"]), _cache_line(summary["cache"])]
    lines += _weeks_chart(summary["weeks"])
    return Group(*lines)


def _search_line(search: dict[str, Any]) -> Text:
    """What the culprit search saved, or cost: it can take more runs than checking each step
    (a culprit among the first steps), and then says so."""
    runs, each, saved = search["runs"], search["runs_checking_each_step"], search["runs_saved"]
    seconds = abs(search["seconds_saved"])
    if saved >= 0:
        outcome = f"saved {saved} (about {seconds:g}s)"
    else:
        outcome = f"cost {-saved} more run{'s' if saved != -1 else ''} (about {seconds:g}s more)"
    return Text.assemble(
        ("Culprit search ", "bold"),
        f"{runs} nox runs where checking each step would take {each}: {outcome}",
    )


def _cache_line(cache: dict[str, Any]) -> Text:
    return Text.assemble(
        ("Cache ", "bold"),
        f"{cache['hits']} results reused: saved about {cache['seconds_saved']:g}s",
    )


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
