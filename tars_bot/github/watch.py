"""Watching the default branch (`workflow_run: completed`): a watched CI workflow that fails on
the commit where a tars-bot change landed, having passed on the commit before it, is reported on
that change's pull request and, with `auto_revert`, answered with its revert pull request. A
later green run of the same workflow on the default branch lifts the suspicion (and closes the
revert that tars-bot opened for it). Each run is handled once, however often it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from tars_bot.config import Config
from tars_bot.github.client import GitHubClient, pull_number
from tars_bot.models import Execution, Suspicion
from tars_bot.system import ExecutionSystem
from tars_bot.ui import github_text

# opens the revert pull request of an execution; returns the revert execution's id, or None
OpenRevert = Callable[[str], str | None]


@dataclass(frozen=True)
class Run:
    """The parts of a `workflow_run` event's payload that matter here."""

    id: int
    workflow_id: int
    workflow: str  # the workflow's name
    path: str  # .github/workflows/ci.yml
    head_sha: str
    head_branch: str
    event: str  # what started the run: push, pull_request...
    conclusion: str | None
    url: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Run:
        run, workflow = payload.get("workflow_run") or {}, payload.get("workflow") or {}
        return cls(
            id=int(run.get("id") or 0),
            workflow_id=int(run.get("workflow_id") or workflow.get("id") or 0),
            workflow=str(workflow.get("name") or run.get("name") or ""),
            path=str(run.get("path") or workflow.get("path") or ""),
            head_sha=str(run.get("head_sha") or ""),
            head_branch=str(run.get("head_branch") or ""),
            event=str(run.get("event") or ""),
            conclusion=run.get("conclusion"),
            url=str(run.get("html_url") or ""),
        )

    def watched(self, config: Config) -> bool:
        names = {name.lower() for name in config.watch_workflows}
        stem = PurePosixPath(self.path).stem.lower()
        return bool(names) and (self.workflow.lower() in names or stem in names)

    @property
    def label(self) -> str:
        return self.workflow or PurePosixPath(self.path).stem or str(self.workflow_id)


def handle(
    system: ExecutionSystem,
    client: GitHubClient,
    payload: dict[str, Any],
    token: str | None,
    open_revert: OpenRevert,
) -> str:
    """Act on one completed run; returns what was done, for the log."""
    run = Run.from_payload(payload)
    config = system.config()
    if payload.get("action") != "completed" or not run.watched(config):
        return f"workflow {run.label!r} is not watched (watch_workflows)"
    default = client.default_branch()
    if run.event != "push" or run.head_branch != default:
        return f"run {run.id} is not of a push to {default}"
    if run.conclusion == "success":
        return _lift(system, client, run, token)
    if run.conclusion != "failure":
        return f"run {run.id} ended {run.conclusion}: it says nothing of the change"
    execution = _landed_at(system, client, run, token)
    if execution is None or execution.landed is None:
        return f"{run.head_sha[:10]} is not where a tars-bot change landed"
    if execution.suspected is not None and execution.suspected.run_id == run.id:
        return f"run {run.id} was handled already"
    before = client.workflow_conclusion(run.workflow_id, execution.landed.onto)
    if before != "success":
        return (
            f"{run.label} was not green just before execution {execution.id} landed "
            f"({before or 'no run'} on {execution.landed.onto[:10]}): not blaming it"
        )
    suspicion = Suspicion(workflow=run.label, run_id=run.id, run_url=run.url, commit=run.head_sha)
    opened = None
    auto_revert = config.auto_revert and not _being_reverted(system, execution)
    if auto_revert:
        suspicion = suspicion.model_copy(update={"revert": open_revert(execution.id)})
        opened = system.status(suspicion.revert).pull_request if suspicion.revert else None
    number = pull_number(execution.pull_request)
    if number is not None and client.find_comment(number, github_text.watch_marker(run.id)) is None:
        then = github_text.after_suspicion(auto_revert, opened)
        client.comment(number, github_text.suspicion(suspicion, execution.landed, then))
    system.note_suspicion(execution.id, suspicion, "origin", token)
    return f"run {run.id} failed where execution {execution.id} landed: reported"


def _landed_at(
    system: ExecutionSystem, client: GitHubClient, run: Run, token: str | None
) -> Execution | None:
    """The execution that landed as the run's commit: from git, or from the pull request GitHub
    says the commit came from (a squash whose message lost tars-bot's trailers)."""
    system.fetch_journal("origin", token)
    found = system.landed_at(run.head_sha)
    if found is not None:
        return found
    urls = set(client.pull_requests_of(run.head_sha))
    for execution in system.history() if urls else []:
        if execution.pull_request in urls:
            system.record_landing(execution.id, run.head_sha, False, "origin", token)
            return system.status(execution.id)
    return None


def _being_reverted(system: ExecutionSystem, execution: Execution) -> bool:
    """Never more than one revert per execution: one exists unless it failed or was undone."""
    ended = ("failed", "rolled_back", "interrupted")
    return any(e.reverts == execution.id and e.state not in ended for e in system.history())


def _lift(system: ExecutionSystem, client: GitHubClient, run: Run, token: str | None) -> str:
    system.fetch_journal("origin", token)
    lifted = []
    for execution in system.history():
        suspicion = execution.suspected
        if suspicion is None or suspicion.workflow != run.label or suspicion.run_id == run.id:
            continue
        if not system.repo.has_object(run.head_sha) or not system.repo.is_ancestor(
            suspicion.commit, run.head_sha
        ):
            continue  # an older commit's run, or one this checkout does not know
        number = pull_number(execution.pull_request)
        marker = github_text.lifted_marker(run.id)
        if number is not None and client.find_comment(number, marker) is None:
            client.comment(number, github_text.lifted(suspicion, run.head_sha, run.url, run.id))
        if suspicion.revert is not None:
            _withdraw(system, client, suspicion.revert, run, token)
        system.note_suspicion(execution.id, None, "origin", token)
        lifted.append(execution.id)
    if not lifted:
        return f"run {run.id} passed: no suspicion to lift"
    return f"run {run.id} passed: lifted the suspicion on {', '.join(lifted)}"


def _withdraw(
    system: ExecutionSystem, client: GitHubClient, revert_id: str, run: Run, token: str | None
) -> None:
    """Close the revert tars-bot opened for a suspicion that is lifted, and roll it back."""
    revert = system.status(revert_id)
    if not revert.kept:
        return  # merged (someone wanted it), or already gone
    number = pull_number(revert.pull_request)
    if number is not None:
        client.close_pull_request(
            number,
            github_text.revert_not_needed(run.label, run.head_sha),
        )
    system.rollback(revert_id, token=token)
