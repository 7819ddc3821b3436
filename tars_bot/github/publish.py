"""Handing an execution to humans: push its branch and journal, open or update its pull request."""

from __future__ import annotations

from tars_bot import report
from tars_bot.github.client import GitHubClient
from tars_bot.system import ExecutionSystem

LABEL = "tars-bot"
LOG_LIMIT = 20_000  # characters of a failed step's output shown in the body


def status_markdown(system: ExecutionSystem, execution_id: str) -> str:
    execution = system.status(execution_id)
    logs = {}
    for step in execution.steps:
        if step.state == "failed" and (log := system.step_log(execution_id, step.number)):
            logs[step.number] = log.decode(errors="replace")[-LOG_LIMIT:]
    return report.execution_markdown(execution, system.plan_of(execution_id), logs)


def update_pull_request(
    system: ExecutionSystem, client: GitHubClient, execution_id: str
) -> tuple[int, str]:
    execution = system.status(execution_id)
    plan = system.plan_of(execution_id)
    return client.open_or_update_pull_request(
        head=execution.branch or plan.branch,
        base=client.default_branch(),
        title=f"tars-bot: {plan.improvement.title}",
        body=status_markdown(system, execution_id),
        labels=[LABEL],
    )


def publish(
    system: ExecutionSystem,
    client: GitHubClient,
    execution_id: str,
    token: str | None,
    remote: str = "origin",
) -> str:
    """Push the execution's branch and journal, then open (or update) its pull request."""
    system.push(execution_id, remote, token)
    _, url = update_pull_request(system, client, execution_id)
    system.record_pull_request(execution_id, url, remote, token)
    return url
