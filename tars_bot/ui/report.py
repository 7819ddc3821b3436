"""Renderings of plans and executions for people (rich text)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from tars_bot.execution.sandbox import SandboxInfo
from tars_bot.execution.view import View
from tars_bot.models import Execution, ExecutionPlan, PlannedStep, Probe, StepResult
from tars_bot.records.learning import Risk
from tars_bot.ui import wording
from tars_bot.ui.progress import LiveProgress as LiveProgress  # the CLI's live display
from tars_bot.ui.stats import stats_renderable as stats_renderable  # `tars-bot stats`
from tars_bot.ui.terminal import STATE_STYLE, plain
from tars_bot.ui.terminal import shown as shown  # the CLI shows untrusted text with it
from tars_bot.ui.wording import GATE_MARK
from tars_bot.ui.wording import verdict as verdict  # the CLI's one-line outcome


def plan_renderable(
    plan: ExecutionPlan,
    verbose: bool = False,
    risks: list[Risk] | None = None,
    explain: bool = False,
) -> Group:
    improvement = plan.improvement
    header = Text.assemble(
        ("Plan ", "bold"),
        (improvement.id or "", "bold cyan"),
        f": {plain(improvement.title)}\n",
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
    risk_of = {r.step: r for r in risks or []}
    if risk_of:
        table.add_column("risk", justify="right")
    gates = any(step.gated for step in plan.steps)
    if gates:
        table.add_column(GATE_MARK)  # parks for approval after this step
    for step in plan.steps:
        row = [
            str(step.number),
            shown(step.name),
            step.action.kind,
            shown(wording.step_changes(step)),
            ", ".join(map(str, step.depends_on)) or "-",
        ]
        row += [shown(", ".join(step.scope))] if per_step_scope else []
        row += [shown(", ".join(step.checks)) or "-"] if with_checks else []
        row += [f"{risk_of[step.number].probability:.0%}"] if risk_of else []
        row += [GATE_MARK if step.gated else ""] if gates else []
        table.add_row(*row)
    parts: list[Text | Table] = [header, table]
    if not per_step_scope and scopes:
        parts.append(Text.assemble(("scope ", "dim"), plain(", ".join(next(iter(scopes))))))
    final = plain(", ".join(plan.validation.final))
    strategy = f" ({plan.validation.strategy})" if final else ""
    parts.append(Text.assemble(("final checks ", "dim"), (final or "none") + strategy))
    if gates:
        parked = ", ".join(str(s.number) for s in plan.steps if s.gated)
        parts.append(Text.assemble((f"{GATE_MARK} ", "dim"), f"parks for approval after {parked}"))
    if explain:
        parts += [_risk_line(risk_of.get(step.number), step) for step in plan.steps]
    if verbose:
        parts += [_step_details(step) for step in plan.steps]
        parts.append(Text.assemble(("digest ", "dim"), plan.digest))
    for warning in plan.warnings:
        parts.append(Text.assemble(("warning: ", "yellow bold"), plain(warning)))
    return Group(*parts)


def _risk_line(risk: Risk | None, step: PlannedStep) -> Text:
    said = risk.explain() if risk else "no history yet: every step is as likely to break a check"
    return Text.assemble((f"risk of step {step.number} ", "dim"), plain(said))


def _step_details(step: PlannedStep) -> Text:
    limits = step.limits
    return Text.assemble(
        (f"step {step.number} ", "dim"),
        plain(f"scope {', '.join(step.scope)}; checks {', '.join(step.checks) or 'none'}; "),
        f"timeout {limits.step_timeout} s, memory {limits.memory_mb} MB, "
        f"<= {limits.max_changed_lines} changed lines, files <= {limits.max_file_mb:g} MB",
    )


def print_plan(
    plan: ExecutionPlan,
    console: Console,
    verbose: bool = False,
    risks: list[Risk] | None = None,
    explain: bool = False,
) -> None:
    console.print(plan_renderable(plan, verbose, risks, explain))


def execution_renderable(execution: Execution) -> Group:
    return Group(
        _execution_header(execution),
        *_detail_lines(execution),
        _steps_table(execution),
        *_healing_lines(execution),
        *_check_lines(execution),
        *_benefit_lines(execution),
        *_culprit_lines(execution),
        *_failure_lines(execution),
    )


def _execution_header(execution: Execution) -> Text:
    style = STATE_STYLE.get(execution.state, "")
    return Text.assemble(
        ("Execution ", "bold"),
        (execution.id, "bold cyan"),
        f" of {execution.improvement}: ",
        (wording.words(execution.state), f"bold {style}"),
        " (dry run)" if execution.dry_run else "",
    )


def _detail_lines(execution: Execution) -> list[Text]:
    details = [
        ("branch", execution.branch or "-"),
        ("base", execution.base_commit[:10]),
        ("head", (execution.head_commit or "-")[:10]),
        ("started", execution.started_at),
        ("finished", execution.finished_at or "-"),
    ]
    if execution.sandbox is not None:
        details.append(("sandbox", wording.sandbox_line(execution.sandbox)))
    if gate := wording.gate_line(execution):
        details.append(("stage", gate))
    if command := wording.approve_command(execution):
        details.append(("continue", command))
    if execution.pushed_to:
        details.append(("pushed to", execution.pushed_to))
    if execution.pull_request:
        details.append(("pull req.", execution.pull_request))
    if execution.state in ("merged", "reverted", "closed"):
        details.append(("after", wording.lifecycle(execution)))
    if execution.checks_stale:
        details.append(("checks", f"{execution.checks_stale} (results below: an earlier tip)"))
    if execution.reverts:
        step = f"step {execution.step_reverted} of " if execution.step_reverted else ""
        details.append(("reverts", f"{step}execution {execution.reverts}"))
    return [Text.assemble((f"{key:9}", "dim"), value) for key, value in details]


def _steps_table(execution: Execution) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", "step", "state", "commit", "files", "time"):
        table.add_column(column)
    for step in execution.steps:
        table.add_row(
            str(step.number),
            shown(step.name),
            _step_state(step),
            (step.commit or "-")[:10],
            str(len(step.changed_files)),
            f"{step.duration_s:.2f}s" if step.duration_s is not None else "-",
        )
    return table


def _healing_lines(execution: Execution) -> list[Text]:
    healed = [line for step in execution.steps if (line := wording.healed_line(step))]
    return [Text.assemble(("healing ", "dim"), plain(line)) for line in healed]


def _check_lines(execution: Execution) -> list[Text]:
    lines = []
    for check in execution.checks:
        style = "green" if check.passed else "red"
        cached = ", cached" if check.cached else ""
        cached += ", on an earlier tip" if execution.checks_stale else ""
        lines.append(
            Text.assemble(
                ("check ", "dim"),
                (plain(check.describe()), style),
                f" ({check.duration_s:.1f}s{cached})",
            )
        )
    return lines


def _benefit_lines(execution: Execution) -> list[Text]:
    lines = []
    for benefit in execution.benefits:
        verdict = {True: ("met", "green"), False: ("not met", "red"), None: ("", "")}[benefit.met]
        target = f" (target {benefit.expected})" if benefit.expected else ""
        lines.append(
            Text.assemble(
                ("benefit ", "dim"),
                plain(benefit.name),
                f": {benefit.before:g} -> {benefit.after:g} {benefit.measure}, "
                f"{benefit.change:+.1%}{target} ",
                verdict,
            )
        )
    return lines


def _failure_lines(execution: Execution) -> list[Text]:
    if not execution.failure_reason:
        return []
    return [Text.assemble(("reason: ", "red bold"), plain(wording.words(execution.failure_reason)))]


def _step_state(step: StepResult) -> Text:
    return Text(plain(wording.state_text(step)), STATE_STYLE.get(step.state, ""))


def _probe_line(probe: Probe) -> Text:
    style = {"passed": "green", "failed": "red"}.get(probe.status, "yellow")
    summary = f": {probe.summary}" if probe.summary else ""
    spent = "cached" if probe.cached else wording.timespan(probe.duration_s)
    return Text.assemble(
        ("    ", ""),
        f"{plain(probe.check)} on {wording.probe_where(probe.commit, probe.step)} ",
        (probe.status, style),
        f"{plain(summary)} ({spent})",
    )


def _culprit_lines(execution: Execution) -> list[Text]:
    lines = []
    for culprit in execution.culprits:
        dropped = " and was dropped" if wording.is_dropped(culprit, execution) else ""
        summary = f": {culprit.summary}" if culprit.summary else ""
        said = plain(f"{wording.blame([culprit], execution)}{dropped}{summary}")
        lines.append(Text.assemble(("culprit ", "dim"), said))
        lines += [_probe_line(probe) for probe in culprit.probes]
    return lines


def history_table(executions: list[Execution]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("execution", "improvement", "state", "steps", "branch", "started"):
        # ids are what users copy: never cut, even on a narrow terminal
        table.add_column(column, no_wrap=column == "execution", min_width=len(column))
    for execution in executions:
        done = sum(s.state in ("applied", "skipped") for s in execution.steps)  # no-ops are done
        table.add_row(
            execution.id,
            shown(execution.improvement),
            Text(wording.words(execution.state), STATE_STYLE.get(execution.state, "")),
            f"{done}/{len(execution.steps)}",
            execution.branch or "-",
            execution.started_at,
        )
    return table


def sandbox_renderable(info: SandboxInfo, seen: View | None, check: bool) -> Group:
    """`tars-bot sandbox`: the mechanism, then each mount with why it is there."""
    lines: list[Text | Table] = [Text(f"sandbox: {info.mechanism}", style="bold")]
    if seen is None:
        lines.append(Text("processes an improvement controls see the whole host, unsandboxed"))
        return Group(*lines)
    who = "a nox session (a check)" if check else "a run step"
    lines.append(Text(f"what {who} sees; nothing else of the host is visible:"))
    table = Table(box=None, show_header=True, pad_edge=False)
    for column in ("path", "access", "why"):
        table.add_column(column, overflow="fold")
    access = {"ro": "read-only", "rw": "read-write", "overlay": "writes discarded"}
    for mount in seen.mounts:
        size = f" {mount.size_mb} MB" if mount.size_mb else ""
        shown = (
            mount.dest if mount.source in ("", mount.dest) else f"{mount.dest} <- {mount.source}"
        )
        table.add_row(shown, access.get(mount.kind, mount.kind) + size, mount.why)
    lines.append(table)
    if seen.left_out:
        lines.append(Text("left out:"))
        lines += [Text(f"  {reason}") for reason in seen.left_out]
    return Group(*lines)
