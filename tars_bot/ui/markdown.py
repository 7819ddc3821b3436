"""GitHub Markdown: pull request bodies, status comments and plan comments. Improvement text and
output in them go through `untrusted`: shown as written, they can hide no HTML comment or marker
that could pass for tars-bot's, and link, embed or mention nothing."""

from __future__ import annotations

from tars_bot.models import Execution, ExecutionPlan, StepResult
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
    if execution.state in ("failed", "rolled_back", "interrupted"):
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
    if execution.checks:
        lines += ["**Final checks**", ""]
        lines += [
            f"- {'✅' if c.passed else '❌'} {for_markdown(c.describe())}" for c in execution.checks
        ]
        lines.append("")
    return lines


def diff_details(diff: str) -> str:
    """A dry run's diff, folded."""
    return f"<details><summary>Diff</summary>\n\n{code_block(diff, 'diff')}\n</details>"


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


PLAN_MARKER = "<!-- tars-bot:plan -->"


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


# -- answers to comment commands ----------------------------------------------------------------
NO_FORKS = "❌ tars-bot does not act on pull requests from forks here."
PULL_REQUEST_CHANGED = "❌ the pull request changed since the command; comment again."
NOTHING_MERGED = "❌ nothing merged to revert here: see `/tars-bot status`."
NO_RESULT = "❌ the execute job left no result: see the workflow run's log."
NO_EXECUTIONS = "No executions yet."


def handled_marker(comment_id: int) -> str:
    """Ends the status comment answering comment `comment_id`: each comment is answered once."""
    return f"<!-- tars-bot:comment={comment_id} -->"


def working_on_it(line: str) -> str:
    return f"⏳ `{line}`: working on it…"


def running(line: str, steps: list[str]) -> str:
    """The status comment while the execution runs: a line per finished step."""
    return f"⏳ `{line}`: running…\n\n" + "\n".join(steps)


def step_line(result: StepResult) -> str:
    icon = {"applied": "✅", "skipped": "⏭️", "failed": "❌"}.get(result.state, "•")
    reason = f": {for_markdown(result.reason)}" if result.reason else ""
    name = for_markdown(result.name)
    return f"- {icon} step {result.number} {name}: {result.state}{reason}"


def usage(problem: str | None, text: str) -> str:
    """The commands' usage (`/tars-bot help`), after what was wrong with a command, if given."""
    block = f"```\n{text}\n```"
    return f"❌ {problem}\n\n{block}" if problem is not None else block


def command_failed(line: str, message: str) -> str:
    return (
        f"❌ `{line}` failed:\n\n{code_block(message)}\n\n"
        f"**Next**: fix what the message says, then comment `{line}` again."
    )


def internal_error(line: str, error: BaseException) -> str:
    said = for_markdown(f"{type(error).__name__}: {error}")
    return f"❌ `{line}` failed with an internal error: {said}"


def execute_failed(message: str) -> str:
    return f"❌ `execute` failed:\n\n{code_block(message)}"


def issue_edited(number: int, digest: str) -> str:
    """Why an `execute` did not run: the issue changed after the command. `digest`: as shown."""
    return (
        f"❌ #{number} was edited after the command, so nothing ran: tars-bot runs only "
        "the improvement the commenter saw.\n\n**Next**: read the issue again, then comment "
        f"`/tars-bot execute --digest {digest}` to run it as it is now."
    )


def next_after_plan(digest: str | None) -> str:
    """What to do with an issue's plan (`digest`: of its body, as shown), or a pull request's."""
    if digest is None:
        return "**Next**: comment `/tars-bot execute` to run it again on the default branch."
    return (
        f"**Next**: comment `/tars-bot execute --digest {digest}` to run this plan: it runs only "
        f"while the issue is as planned here (body digest `{digest}`); add `--dry-run` to try it "
        "without a branch. To change it, edit the issue and comment `/tars-bot plan` again."
    )


def with_diff(body: str, diff: str | None) -> str:
    """A dry run's status, with its diff folded below it when there is one."""
    return body if diff is None else body + "\n\n" + diff_details(diff)


def executed(url: str, warnings: list[str], status: str) -> str:
    return "\n\n".join([f"✅ Executed: {url}", *(f"⚠️ {w}" for w in warnings), status])


def publish_failed(execution: Execution, message: str, status: str) -> str:
    pull = f" and pull request {execution.pull_request}" if execution.pull_request else ""
    head = (
        f"❌ Execution `{execution.id}` succeeded on branch `{execution.branch}`{pull}, but "
        f"publishing it failed:\n\n{code_block(message)}\n\n**Next**: fix what the "
        "message says, then comment `/tars-bot execute` again."
    )
    return f"{head}\n\n{status}"


def result_refused(message: str) -> str:
    refused = "❌ The execute job's result was refused, so nothing was pushed"
    return f"{refused}:\n\n{code_block(message)}"


def revert_failed(execution_id: str, status: str) -> str:
    return f"❌ The revert of execution `{execution_id}` failed its checks:\n\n{status}"


def reverting(execution_id: str, step: int | None, body: str) -> str:
    what = f"step {step} of " if step else ""
    return f"↩️ Reverting {what}execution `{execution_id}` (it is merged):\n\n{body}"


def history_markdown(executions: list[Execution]) -> str:
    lines = ["| execution | improvement | state | steps | pull request |", "|---|---|---|---|---|"]
    for e in executions:
        applied = sum(s.state == "applied" for s in e.steps)
        pull, improvement = e.pull_request or "-", for_markdown(e.improvement)
        lines.append(
            f"| `{e.id}` | {improvement} | {e.state} | {applied}/{len(e.steps)} | {pull} |"
        )
    return "\n".join(lines) if executions else NO_EXECUTIONS


# -- plans of a pull request's improvement files -----------------------------------------------
def after_merge(improvement_id: str) -> str:
    return (
        "**Next**: once this pull request is merged, run the tars-bot workflow "
        f"(workflow_dispatch) with improvement-id `{improvement_id}` to execute it."
    )


def cannot_plan(shown: str, message: str) -> str:
    """`shown`: the file, as Markdown."""
    return f"❌ {shown} cannot be planned:\n\n{code_block(message)}"


def plans_comment(sections: list[str]) -> str:
    return "\n\n---\n\n".join(sections) + f"\n\n{PLAN_MARKER}"
