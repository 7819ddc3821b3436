"""What tars-bot says on GitHub besides its reports (markdown.py): the answers to comment
commands, the watcher's comments, the titles of pull requests and check runs. Markers end what
tars-bot writes: they are how it finds its own comments again. Improvement text and output go
through `untrusted`, as in markdown.py."""

from __future__ import annotations

from collections import Counter

from tars_bot.models import Execution, Landing, StepResult, Suspicion
from tars_bot.models.execution import SHA_SHOWN
from tars_bot.ui import wording
from tars_bot.ui.untrusted import code_block, code_span, for_markdown

PLAN_MARKER = "<!-- tars-bot:plan -->"


# -- who may command, and what went wrong before the command ran --------------------------------
STOPPED = "tars-bot stopped before the command could run; comment it again to retry"


def refusal_marker(login: str) -> str:
    """Marks the refusal to `login`: one per commenter and issue, however often they ask."""
    return f"<!-- tars-bot:refusal={login} -->"


def refusal(login: str, permission: str, needed: str) -> str:
    """To someone without the permission `needed` (roles, as words) to give commands."""
    held = "no" if permission == "none" else permission
    return (
        f"Sorry @{login}, tars-bot only takes commands from people with {needed} "
        f"permission on this repository, and you have {held} permission. A maintainer can run "
        f"the command for you.\n\n{refusal_marker(login)}"
    )


def could_not_run(login: str, line: str, reason: str) -> str:
    """The webhook app could not hand the command `line` over (`reason`: one line)."""
    command = line.replace("`", "'")
    return f"@{login} tars-bot could not run `{command}`: {reason}\n\n<!-- tars-bot:failure -->"


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


def diff_details(diff: str) -> str:
    """A dry run's diff, folded."""
    return f"<details><summary>Diff</summary>\n\n{code_block(diff, 'diff')}\n</details>"


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


# -- pull requests -------------------------------------------------------------------------------
def pull_request_title(title: str, revert: bool) -> str:
    """A revert's title says so first: "Revert tars-bot: ..."."""
    return title if revert else f"tars-bot: {title}"


def rolled_back(execution_id: str) -> str:
    """Closes the pull request of an execution rolled back whole."""
    return f"Rolled back by tars-bot (execution {execution_id})."


# -- watching the default branch (`workflow`: a workflow's name, any text) ------------------------
NEXT_IF_CAUSE = (
    "if this change is the cause, comment `/tars-bot rollback` here to open its revert pull "
    "request (or `/tars-bot rollback --step N` for one step)."
)


def watch_marker(run_id: int) -> str:
    return f"<!-- tars-bot:watch-run={run_id} -->"


def lifted_marker(run_id: int) -> str:
    return f"<!-- tars-bot:watch-lifted={run_id} -->"


def suspicion(raised: Suspicion, landed: Landing, then: str) -> str:
    """A watched workflow failed where the change landed, and passed just before it."""
    return (
        f"⚠️ {code_span(raised.workflow)} failed on `{raised.commit[:10]}`, where this change "
        f"landed on the default branch ({landed.kind} `{landed.commit[:10]}`), and passed just "
        f"before it, on `{landed.onto[:10]}`. Failing run: {raised.run_url}\n\n{then}\n\n"
        + watch_marker(raised.run_id)
    )


def after_suspicion(auto_revert: bool, opened: str | None) -> str:
    """What follows a suspicion: the revert opened (`auto_revert`), or what to do."""
    if not auto_revert:
        return f"**Next**: {NEXT_IF_CAUSE}"
    if opened:
        return f"tars-bot opened its revert (`auto_revert`): {opened}"
    return (
        "tars-bot could not open its revert (`auto_revert`): see this workflow run's "
        f"log. **Next**: {NEXT_IF_CAUSE}"
    )


def lifted(raised: Suspicion, commit: str, run_url: str, run_id: int) -> str:
    """The workflow passed again (run `run_id`, on `commit`): the suspicion is lifted."""
    withdrawn = f" The revert (execution `{raised.revert}`) is withdrawn." if raised.revert else ""
    return (
        f"✅ {code_span(raised.workflow)} passed again on `{commit[:10]}` ({run_url}): the "
        f"suspicion raised by {raised.run_url} is lifted.{withdrawn}\n\n" + lifted_marker(run_id)
    )


def revert_not_needed(workflow: str, commit: str) -> str:
    """Closes the revert tars-bot opened for a suspicion that is lifted."""
    return f"{code_span(workflow)} passed again on `{commit[:10]}`: this revert is not needed."


# -- check runs ------------------------------------------------------------------------------------
def check_title(execution: Execution) -> str:
    """One line: "3 steps applied, 2 checks passed", after the state unless it succeeded."""
    states = Counter(step.state for step in execution.steps)
    parts = [f"{_count(states['applied'], 'step')} applied"]
    parts += [
        f"{states[state]} {state}" for state in ("reverted", "failed", "skipped") if states[state]
    ]
    results = [c for step in execution.steps for c in step.checks] + execution.checks
    passed = sum(c.passed for c in results)
    if not results:
        parts.append("nothing checked")
    elif passed == len(results):
        parts.append(f"{_count(passed, 'check')} passed")
    else:
        parts.append(f"{passed} of {_count(len(results), 'check')} passed")
    if execution.checks_stale:
        parts.append(execution.checks_stale)
    text = ", ".join(parts)
    if execution.state == "succeeded":
        return text
    return f"{execution.state.replace('_', ' ')}: {text}"


def annotations_left_off(count: int, most: int) -> str:
    return f"\n{count} more annotations left off: GitHub takes {most}.\n"


def cut_here(limit: int) -> str:
    """Ends a text cut to GitHub's `limit` of characters."""
    return f"\n\n*[cut here to fit GitHub's limit of {limit:,} characters]*\n"


def dropped_broke(step: str, check: str, message: str) -> str:
    """An annotation where a dropped step (`step "name"`) broke a check."""
    return f"{step}, dropped from the branch, broke {check} here:\n{message}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def comment_to_approve(execution: Execution) -> str | None:
    """`/tars-bot approve --step N --sha X`: the comment that approves the pending gate."""
    gate = execution.gate
    if execution.state != "parked" or gate is None or gate.status != "pending":
        return None
    if gate.kind == "pause":
        return "/tars-bot resume"
    return f"/tars-bot approve --step {gate.step} --sha {gate.commit[:SHA_SHOWN]}"


def parked(execution: Execution, status: str) -> str:
    """The status comment of a parked execution: the stage line (the branch is the dev stage),
    the exact comment that continues it, and when its gate expires. No job waits meanwhile."""
    gate = execution.gate
    assert gate is not None  # parked
    approve = comment_to_approve(execution) or "/tars-bot resume"
    return (
        f"dev: {wording.gate_line(execution)}\n\n"
        f"To continue, comment `{approve}` (people with write access; the branch is "
        f"`{execution.branch}`). To stop, comment `/tars-bot reject [reason]`. "
        f"The gate expires at {gate.expires_at}.\n\n{status}\n\n{gates_marker(execution.id)}"
    )


def gates_marker(execution_id: str) -> str:
    """Marks the status comment that follows an execution from gate to gate, edited in place."""
    return f"<!-- tars-bot:gates={execution_id} -->"


def followed(execution: Execution, line: str) -> str:
    """The reply to a decision on a gate: short, the execution's status comment says the rest."""
    pull = f", {execution.pull_request}" if execution.pull_request else ""
    done = f"execution `{execution.id}`: {wording.words(execution.state)}{pull}"
    approve = comment_to_approve(execution)
    then = f" To continue, comment `{approve}`." if approve else ""
    what = wording.gate_line(execution) or done
    return f"✅ `{line}`: {what}. Its status comment is updated in place.{then}"
