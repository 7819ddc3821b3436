"""Handing an execution to humans: push its branch and journal, open or update its pull request,
show its validation as a check run and in the Actions job summary."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.github import checks
from tars_bot.github.client import GitHubClient, PullRequest, pull_number
from tars_bot.system import ExecutionSystem
from tars_bot.ui import github_text, markdown

log = logging.getLogger(__name__)

LABEL = "tars-bot"
LOG_LIMIT = 20_000  # characters of a failed step's output shown in the body

Warn = Callable[[str], None]


def status_markdown(system: ExecutionSystem, execution_id: str) -> str:
    execution = system.status(execution_id)
    logs = {}
    for step in execution.steps:
        if step.state == "failed" and (log := system.step_log(execution_id, step.number)):
            logs[step.number] = log.decode(errors="replace")[-LOG_LIMIT:]
    return markdown.execution_markdown(execution, system.plan_of(execution_id), logs)


def update_pull_request(
    system: ExecutionSystem, client: GitHubClient, execution_id: str, warn: Warn = log.warning
) -> PullRequest:
    pull = _open_or_update(system, client, execution_id)
    label(client, pull, warn)
    return pull


def publish(
    system: ExecutionSystem,
    client: GitHubClient,
    execution_id: str,
    token: str | None,
    remote: str = "origin",
    warn: Warn = log.warning,
) -> str:
    """Push the execution's branch and journal, then open (or update) its pull request, recorded
    in the journal at once: a later rollback closes it, whatever happens next."""
    system.push(execution_id, remote, token)
    pull = _open_or_update(system, client, execution_id)
    system.record_pull_request(execution_id, pull.url, remote, token)
    label(client, pull, warn)
    check_run(system, client, execution_id, warn)
    return pull.url


def follow_rollback(
    system: ExecutionSystem, client: GitHubClient, execution_id: str, whole: bool
) -> None:
    """The pull request of a rolled-back execution follows it: closed when all of it was rolled
    back, else its body updated."""
    execution = system.status(execution_id)
    number = pull_number(execution.pull_request)
    if number is None:
        return
    if whole:
        client.close_pull_request(number, github_text.rolled_back(execution.id))
    else:
        update_pull_request(system, client, execution.id)
        check_run(system, client, execution.id)  # the new tip: neutral, unvalidated


def label(client: GitHubClient, pull: PullRequest, warn: Warn = log.warning) -> None:
    """Decoration: a label that cannot be added is reported through `warn`, never raised."""
    if LABEL in pull.labels:
        return
    try:
        client.add_labels(pull.number, [LABEL])
    except TarsError as e:
        warn(f"the pull request is not labelled {LABEL}: {e}")


def check_run(
    system: ExecutionSystem, client: GitHubClient, execution_id: str, warn: Warn = log.warning
) -> None:
    """The validation as a check run on the pushed branch's tip: a pull request opened with
    Actions' GITHUB_TOKEN starts no CI, so this shows what was validated. Decoration: a check
    run GitHub refuses (a token without checks: write) is reported through `warn`."""
    execution = system.status(execution_id)
    assert execution.head_commit is not None  # pushed
    tree = system.repo.tree_of(execution.head_commit)

    def exists(path: str) -> bool:  # looked up one by one: the tree is never listed
        return system.repo.kind(tree, path) is not None

    run = checks.check_run(execution, system.plan_of(execution_id), exists)
    try:
        client.create_check_run(
            checks.NAME, run.head_sha, run.conclusion, run.output, run.started_at, run.completed_at
        )
    except TarsError as e:
        warn(f"no check run {checks.NAME} on the branch: {e}")


def job_summary(
    system: ExecutionSystem, execution_id: str, environ: Mapping[str, str], warn: Warn = log.warning
) -> None:
    """Append the validation report to the Actions job's summary, when $GITHUB_STEP_SUMMARY
    names one."""
    if not (path := environ.get("GITHUB_STEP_SUMMARY")):
        return
    report = checks.report(system.status(execution_id), system.plan_of(execution_id))
    try:
        with Path(path).open("a", encoding="utf-8") as summary:
            summary.write(report + "\n")
    except OSError as e:
        warn(f"the job summary was not written: {e}")


def _open_or_update(
    system: ExecutionSystem, client: GitHubClient, execution_id: str
) -> PullRequest:
    execution = system.status(execution_id)
    plan = system.plan_of(execution_id)
    return client.open_or_update_pull_request(
        head=execution.branch or plan.branch,
        base=client.default_branch(),
        title=github_text.pull_request_title(plan.improvement.title, bool(execution.reverts)),
        body=status_markdown(system, execution_id),
    )
