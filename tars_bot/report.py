"""Renderings of plans and executions for people (rich text)."""

from __future__ import annotations

import re

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tars_bot.models import Execution, ExecutionPlan, PlannedStep, StepResult


def _changes(step: PlannedStep) -> str:
    if step.action.kind == "run":
        return f"$ {step.action.command}"  # type: ignore[union-attr]
    return ", ".join(step.files or [])


def plan_renderable(plan: ExecutionPlan, verbose: bool = False) -> Group:
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
    scopes = {tuple(step.scope) for step in plan.steps}
    per_step_scope = len(scopes) > 1
    with_checks = any(step.checks for step in plan.steps)
    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", "step", "action", "changes", "after"):
        table.add_column(column, overflow="fold")
    if per_step_scope:
        table.add_column("scope", overflow="fold")
    if with_checks:
        table.add_column("checks")
    for step in plan.steps:
        row = [
            str(step.number),
            escape(step.name),
            step.action.kind,
            escape(_changes(step)),
            ", ".join(map(str, step.depends_on)) or "-",
        ]
        row += [escape(", ".join(step.scope))] if per_step_scope else []
        row += [escape(", ".join(step.checks)) or "-"] if with_checks else []
        table.add_row(*row)
    parts: list[Text | Table] = [header, table]
    if not per_step_scope and scopes:
        parts.append(Text.assemble(("scope ", "dim"), ", ".join(next(iter(scopes)))))
    final = ", ".join(plan.validation.final)
    strategy = f" ({plan.validation.strategy})" if final else ""
    parts.append(Text.assemble(("final checks ", "dim"), (final or "none") + strategy))
    if verbose:
        parts += [_step_details(step) for step in plan.steps]
        parts.append(Text.assemble(("digest ", "dim"), plan.digest))
    for warning in plan.warnings:
        parts.append(Text.assemble(("warning: ", "yellow bold"), warning))
    return Group(*parts)


def _step_details(step: PlannedStep) -> Text:
    limits = step.limits
    return Text.assemble(
        (f"step {step.number} ", "dim"),
        f"scope {', '.join(step.scope)}; checks {', '.join(step.checks) or 'none'}; "
        f"timeout {limits.step_timeout} s, memory {limits.memory_mb} MB, "
        f"<= {limits.max_changed_lines} changed lines, files <= {limits.max_file_mb:g} MB",
    )


def print_plan(plan: ExecutionPlan, console: Console, verbose: bool = False) -> None:
    console.print(plan_renderable(plan, verbose))


STATE_STYLE = {
    "applied": "green",
    "succeeded": "green",
    "skipped": "yellow",
    "failed": "red",
    "rolled_back": "red",
    "interrupted": "red",
    "running": "cyan",
    "pending": "dim",
}


def execution_renderable(execution: Execution) -> Group:
    style = STATE_STYLE.get(execution.state, "")
    header = Text.assemble(
        ("Execution ", "bold"),
        (execution.id, "bold cyan"),
        f" of {execution.improvement}: ",
        (execution.state, f"bold {style}"),
        " (dry run)" if execution.dry_run else "",
    )
    lines: list[Text | Table] = [header]
    details = [
        ("branch", execution.branch or "-"),
        ("base", execution.base_commit[:10]),
        ("head", (execution.head_commit or "-")[:10]),
        ("started", execution.started_at),
        ("finished", execution.finished_at or "-"),
    ]
    if execution.pushed_to:
        details.append(("pushed to", execution.pushed_to))
    if execution.pull_request:
        details.append(("pull req.", execution.pull_request))
    lines += [Text.assemble((f"{key:9}", "dim"), value) for key, value in details]
    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", "step", "state", "commit", "files", "time"):
        table.add_column(column)
    for step in execution.steps:
        table.add_row(
            str(step.number),
            escape(step.name),
            Text(step.state, STATE_STYLE.get(step.state, "")),
            (step.commit or "-")[:10],
            str(len(step.changed_files)),
            f"{step.duration_s:.2f}s" if step.duration_s is not None else "-",
        )
    lines.append(table)
    for check in execution.checks:
        style = "green" if check.passed else "red"
        cached = ", cached" if check.cached else ""
        lines.append(
            Text.assemble(
                ("check ", "dim"), (check.describe(), style), f" ({check.duration_s:.1f}s{cached})"
            )
        )
    for benefit in execution.benefits:
        verdict = {True: ("met", "green"), False: ("not met", "red"), None: ("", "")}[benefit.met]
        target = f" (target {benefit.expected})" if benefit.expected else ""
        lines.append(
            Text.assemble(
                ("benefit ", "dim"),
                f"{benefit.name}: {benefit.before:g} -> {benefit.after:g} {benefit.measure}, "
                f"{benefit.change:+.1%}{target} ",
                verdict,
            )
        )
    if execution.failure_reason:
        lines.append(Text.assemble(("reason: ", "red bold"), execution.failure_reason))
    return Group(*lines)


def history_table(executions: list[Execution]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("execution", "improvement", "state", "steps", "branch", "started"):
        table.add_column(column)
    for execution in executions:
        applied = sum(s.state == "applied" for s in execution.steps)
        table.add_row(
            execution.id,
            escape(execution.improvement),
            Text(execution.state, STATE_STYLE.get(execution.state, "")),
            f"{applied}/{len(execution.steps)}",
            execution.branch or "-",
            execution.started_at,
        )
    return table


class LiveProgress:
    """One line per step: a spinner while it runs, then its outcome and time."""

    def __init__(self, console: Console, verbose: bool) -> None:
        self.console, self.verbose = console, verbose
        self.progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[int, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step_started(self, step: PlannedStep) -> None:
        self.tasks[step.number] = self.progress.add_task(f"{step.number}. {escape(step.name)}")

    def step_finished(self, result: StepResult) -> None:
        style = STATE_STYLE.get(result.state, "")
        note = f" [{style}]{result.state}[/{style}]"
        if result.reason:
            note += f": {escape(result.reason)}"
        task = self.tasks[result.number]
        self.progress.update(
            task, description=f"{result.number}. {escape(result.name)}{note}", total=1, completed=1
        )

    def output(self, chunk: bytes) -> None:
        if self.verbose:
            self.progress.console.out(chunk.decode(errors="replace"), end="", highlight=False)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def marker(execution_id: str) -> str:
    return f"<!-- tars-bot:execution={execution_id} -->"


def execution_markdown(
    execution: Execution, plan: ExecutionPlan, logs: dict[int, str] | None = None
) -> str:
    """The pull request body / status comment for an execution, as GitHub Markdown. The hidden
    marker comes last: bodies too long for GitHub are cut at the start, never the end."""
    improvement = plan.improvement
    lines = [f"**tars-bot** executed improvement `{improvement.id}`: {improvement.title}", ""]
    if improvement.description:
        lines += [improvement.description, ""]
    state = execution.state.replace("_", " ")
    lines += [f"State: **{state}**" + (" (dry run)" if execution.dry_run else ""), ""]
    if execution.failure_reason:
        lines += [f"> {_md(execution.failure_reason)}", ""]
    lines += ["| # | step | state | commit | checks | time |", "|---|---|---|---|---|---|"]
    for step in execution.steps:
        commit = f"`{step.commit[:10]}`" if step.commit else "-"
        checks = ", ".join(f"{c.check} {'✅' if c.passed else '❌'}" for c in step.checks) or "-"
        duration = f"{step.duration_s:.1f}s" if step.duration_s is not None else "-"
        cells = [str(step.number), _md(step.name), step.state, commit, checks, duration]
        lines.append(f"| {' | '.join(cells)} |")
    lines.append("")
    if execution.checks:
        lines += ["**Final checks**", ""]
        lines += [f"- {'✅' if c.passed else '❌'} {_md(c.describe())}" for c in execution.checks]
        lines.append("")
    lines += _benefits_markdown(plan, execution)
    for number, log in (logs or {}).items():
        fence = "`" * max(3, *(len(run) + 1 for run in re.findall("`+", log)))
        summary = f"<details><summary>Output of step {number}</summary>"
        lines += [summary, "", fence, log, fence, "</details>", ""]
    lines += [
        "**Rollback**: comment `/tars-bot rollback` (everything) or `/tars-bot rollback --step N`,",
        f"or run `tars-bot rollback --execution-id {execution.id} [--step N]`.",
        "",
        marker(execution.id),
    ]
    return "\n".join(lines)


def _benefits_markdown(plan: ExecutionPlan, execution: Execution) -> list[str]:
    texts = [b for b in plan.improvement.expected_benefits if isinstance(b, str)]
    if not texts and not execution.benefits:
        return []
    lines = ["**Benefits**", ""]
    lines += [f"- expected: {_md(text)}" for text in texts]
    for b in execution.benefits:
        verdict = {True: " ✅ met", False: " ❌ not met", None: ""}[b.met]
        target = f" (target {b.expected})" if b.expected else ""
        change = f"{b.before:g} → {b.after:g} {b.measure}, {b.change:+.1%}"
        lines.append(f"- {_md(b.name)}: {change}{target}{verdict}")
    return [*lines, ""]


PLAN_MARKER = "<!-- tars-bot:plan -->"


def plan_markdown(plan: ExecutionPlan, source: str) -> str:
    """A plan as GitHub Markdown, for pull requests that add or change improvement files."""
    improvement = plan.improvement
    lines = [
        f"**tars-bot plan** for `{improvement.id}` ({_md(source)}): {_md(improvement.title)}",
        "",
        f"Base `{plan.base.commit[:10]}`, branch `{plan.branch}`, digest `{plan.digest[:19]}`",
        "",
        "| # | step | action | changes | after |",
        "|---|---|---|---|---|",
    ]
    for step in plan.steps:
        after = ", ".join(map(str, step.depends_on)) or "-"
        lines.append(
            f"| {step.number} | {_md(step.name)} | {step.action.kind} | "
            f"{_md(_changes(step))} | {after} |"
        )
    final = ", ".join(plan.validation.final) or "none"
    lines += ["", f"Final checks: {final} ({plan.validation.strategy})", ""]
    lines += [f"- ⚠️ {_md(w)}" for w in plan.warnings]
    return "\n".join(lines)
