"""GitHub Markdown: pull request bodies, status comments and plan comments. Improvement text and
output in them go through `untrusted`: shown as written, they can hide no HTML comment or marker
that could pass for tars-bot's, and link, embed or mention nothing."""

from __future__ import annotations

from tars_bot.models import BROKE, Execution, ExecutionPlan
from tars_bot.ui.untrusted import code_block, for_markdown, for_markdown_lines
from tars_bot.ui.wording import (
    blame,
    healed_line,
    sandbox_line,
    state_text,
    step_changes,
    timespan,
)


def marker(execution_id: str) -> str:
    return f"<!-- tars-bot:execution={execution_id} -->"


def execution_markdown(
    execution: Execution, plan: ExecutionPlan, logs: dict[int, str] | None = None
) -> str:
    """The pull request body / status comment for an execution, as GitHub Markdown. The hidden
    marker comes last: bodies too long for GitHub are cut at the start, never the end."""
    improvement = plan.improvement
    title = for_markdown(improvement.title)
    lines = [f"**tars-bot** executed improvement `{improvement.id}`: {title}", ""]
    if improvement.description:
        lines += [for_markdown_lines(improvement.description), ""]
    state = execution.state.replace("_", " ")
    lines += [f"State: **{state}**" + (" (dry run)" if execution.dry_run else ""), ""]
    lines += _outcome_markdown(execution)
    lines += _culprits_markdown(execution)
    lines += _benefits_markdown(plan, execution)
    for number, log in (logs or {}).items():
        summary = f"<details><summary>Output of step {number}</summary>"
        lines += [summary, "", code_block(log), "</details>", ""]
    if execution.state == "unvalidated":
        lines += [
            f"**Validate again**: `tars-bot validate --execution-id {execution.id}`; the branch "
            "is kept until you roll it back.",
            "",
        ]
    if execution.state in BROKE:
        lines += _failure_markdown(execution)
    elif not execution.dry_run:
        lines += [
            "**Rollback**: comment `/tars-bot rollback` (everything) or "
            "`/tars-bot rollback --step N`,",
            f"or run `tars-bot rollback --execution-id {execution.id} [--step N]`.",
            "",
        ]
    lines.append(marker(execution.id))
    return "\n".join(lines)


def validation_markdown(execution: Execution, plan: ExecutionPlan) -> str:
    """What was validated and how it went (a check run's summary, an Actions job summary): each
    step and its checks, the final checks, and each culprit with the tail of its failing run."""
    improvement = plan.improvement
    lines = [
        f"**tars-bot** validated improvement `{improvement.id}`: {for_markdown(improvement.title)}",
        "",
    ]
    state = f"State: **{execution.state.replace('_', ' ')}**"
    if execution.branch and execution.head_commit:
        state += f", branch `{execution.branch}` at `{execution.head_commit[:10]}`"
    lines += [state, ""]
    lines += _outcome_markdown(execution)
    lines += _culprits_markdown(execution, outputs=True)
    lines += _benefits_markdown(plan, execution)
    return "\n".join(lines).rstrip() + "\n"


def _outcome_markdown(execution: Execution) -> list[str]:
    """Why it failed, the sandbox, each step (its commit, checks and time), the final checks."""
    lines = [f"> {for_markdown(execution.failure_reason)}", ""] if execution.failure_reason else []
    if execution.sandbox is not None:
        warn = "" if execution.sandbox.sandboxed else "⚠️ "
        lines += [f"{warn}Sandbox: {for_markdown(sandbox_line(execution.sandbox))}", ""]
    lines += ["| # | step | state | commit | checks | time |", "|---|---|---|---|---|---|"]
    for step in execution.steps:
        commit = f"`{step.commit[:10]}`" if step.commit else "-"
        checks = ", ".join(f"{c.check} {'✅' if c.passed else '❌'}" for c in step.checks) or "-"
        duration = f"{step.duration_s:.1f}s" if step.duration_s is not None else "-"
        cells = [
            str(step.number),
            for_markdown(step.name),
            for_markdown(state_text(step)),
            commit,
            checks,
            duration,
        ]
        lines.append(f"| {' | '.join(cells)} |")
    lines.append("")
    healed = [line for step in execution.steps if (line := healed_line(step))]
    if healed:
        lines += ["**Healing**", "", *(f"- 🩹 {for_markdown(line)}" for line in healed), ""]
    if execution.checks_stale:
        lines += [
            f"⚠️ Checks {execution.checks_stale}: the results below are of an earlier tip.",
            "",
        ]
    if execution.checks:
        lines += ["**Final checks**", ""]
        lines += [
            f"- {'✅' if c.passed else '❌'} {for_markdown(c.describe())}" for c in execution.checks
        ]
        lines.append("")
    return lines


def _failure_markdown(execution: Execution) -> list[str]:
    """Where a failed execution left things, and what to do next."""
    branch = f"branch `{execution.branch}`" if execution.branch else "no branch (dry run)"
    if execution.branch and execution.state == "rolled_back":
        branch += " (deleted by the rollback; its commits stay in the journal)"
    pull = f"pull request {execution.pull_request}" if execution.pull_request else "no pull request"
    return [
        f"Execution `{execution.id}`, {branch}, {pull}.",
        "",
        "**Next**: see the reason and the output above, fix the improvement (or the code it "
        "relies on), then comment `/tars-bot execute` again; `/tars-bot execute --dry-run` "
        f"tries it without a branch. Locally: `tars-bot status --execution-id {execution.id}`.",
        "",
    ]


def _culprits_markdown(execution: Execution, outputs: bool = False) -> list[str]:
    """Each step that broke a final check, and the runs (tip, bisection) that found it; with
    `outputs`, the tail of its failing run too."""
    if not execution.culprits:
        return []
    lines = ["**Culprits**", ""]
    for culprit in execution.culprits:
        summary = f" ({culprit.summary})" if culprit.summary else ""
        revert = next((s.revert_commit for s in execution.steps if s.number == culprit.step), None)
        outcome = f"dropped: reverted by `{revert[:7]}`" if revert else "not dropped"
        lines += [
            f"- ❌ {for_markdown(blame([culprit], execution))}{for_markdown(summary)}; {outcome}",
            "",
        ]
        lines += ["| check | commit | step | result | time |", "|---|---|---|---|---|"]
        for p in culprit.probes:
            step = {None: "-", 0: "base"}.get(p.step, str(p.step))
            icon = {"passed": "✅", "failed": "❌"}.get(p.status, "⚠️")
            result = f"{icon} {p.status}" + (f": {for_markdown(p.summary)}" if p.summary else "")
            spent = "cached" if p.cached else timespan(p.duration_s)
            lines.append(
                f"| {for_markdown(p.check)} | `{p.commit[:7]}` | {step} | {result} | {spent} |"
            )
        lines.append("")
        if outputs:
            lines += [code_block(culprit.result.output.rstrip() or "(no output)"), ""]
    return lines


def _benefits_markdown(plan: ExecutionPlan, execution: Execution) -> list[str]:
    texts = [b for b in plan.improvement.expected_benefits if isinstance(b, str)]
    if not texts and not execution.benefits:
        return []
    lines = ["**Benefits**", ""]
    lines += [f"- expected: {for_markdown(text)}" for text in texts]
    for b in execution.benefits:
        verdict = {True: " ✅ met", False: " ❌ not met", None: ""}[b.met]
        target = f" (target {b.expected})" if b.expected else ""
        change = f"{b.before:g} → {b.after:g} {b.measure}, {b.change:+.1%}"
        lines.append(f"- {for_markdown(b.name)}: {change}{target}{verdict}")
    return [*lines, ""]


def plan_markdown(plan: ExecutionPlan, source: str, next_step: str | None = None) -> str:
    """A plan as GitHub Markdown (an issue's `/tars-bot plan`, a pull request's improvement
    files), ending with `next_step`: what to do with it. `source`: Markdown, where it came from."""
    improvement = plan.improvement
    title = for_markdown(improvement.title)
    lines = [
        f"**tars-bot plan** for `{improvement.id}` ({source}): {title}",
        "",
        f"Base `{plan.base.commit[:10]}`, branch `{plan.branch}`, digest `{plan.digest[:19]}`",
        "",
        "| # | step | action | changes | may write | after |",
        "|---|---|---|---|---|---|",
    ]
    for step in plan.steps:
        after = ", ".join(map(str, step.depends_on)) or "-"
        scope = for_markdown(", ".join(step.scope)) or "-"
        lines.append(
            f"| {step.number} | {for_markdown(step.name)} | {step.action.kind} | "
            f"{for_markdown(step_changes(step))} | {scope} | {after} |"
        )
    lines += ["", _checks_line(plan), ""]
    lines += [f"- ⚠️ {for_markdown(w)}" for w in plan.warnings]
    if next_step:
        lines += ([""] if plan.warnings else []) + [next_step]
    return "\n".join(lines)


def _checks_line(plan: ExecutionPlan) -> str:
    if plan.validation.final:
        return f"Final checks: {', '.join(plan.validation.final)} ({plan.validation.strategy})"
    per_step = sorted({check for step in plan.steps for check in step.checks})
    if per_step:
        checks = for_markdown(", ".join(per_step))
        return (
            f"⚠️ **No final checks**: only {checks} after steps; nothing tests the result as a "
            "whole (set `validation.final`)."
        )
    return (
        "⚠️ **Nothing will test this change**: no final checks and no nox sessions after steps, "
        "only quick checks (if configured) on changed Python files. Set `validation` in the "
        "improvement or in `[tool.tars-bot]`."
    )
