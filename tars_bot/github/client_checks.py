"""The GitHub client's check runs and workflow runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from github.GithubObject import NotSet
from github.Repository import Repository

from tars_bot.github.client_session import PER_PAGE, api_call
from tars_bot.stages.ci import CIReport, check_run_outcome, status_outcome

CHECKS_HINT = "check runs need a GitHub App's token with the checks: write permission"


class CheckRuns:
    """Check runs, workflow runs and the pull requests of a commit, on one repository."""

    _repo: Repository

    def create_check_run(
        self,
        name: str,
        head_sha: str,
        conclusion: str,
        output: dict[str, Any],
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
    ) -> str:
        """A completed check run on commit `head_sha`; its URL. `output` as GitHub's REST
        description has it (title, summary, annotations). Only a GitHub App's token (Actions'
        GITHUB_TOKEN is one) with `checks: write` may create one."""
        with api_call(f"create check run {name!r} on {head_sha[:10]}", {403: CHECKS_HINT}):
            run = self._repo.create_check_run(
                name,
                head_sha,
                status="completed",
                conclusion=conclusion,
                output=output,
                started_at=started_at if started_at is not None else NotSet,
                completed_at=completed_at if completed_at is not None else NotSet,
            )
            return run.html_url

    def workflow_conclusion(self, workflow_id: int, head_sha: str) -> str | None:
        """How the latest completed run of a workflow on `head_sha` ended (success, failure,
        ...), or None when it has none."""
        with api_call(f"list the runs of workflow {workflow_id} on {head_sha[:10]}"):
            runs = self._repo.get_workflow(workflow_id).get_runs(
                head_sha=head_sha, status="completed"
            )
            latest = max(runs, key=lambda run: run.run_number, default=None)
            return latest.conclusion if latest is not None else None

    def pull_requests_of(self, commit: str) -> list[str]:
        """The URLs of the pull requests GitHub associates with `commit` (merged as it, or
        holding it)."""
        with api_call(f"list the pull requests of {commit[:10]}"):
            return [pull.html_url for pull in self._repo.get_commit(commit).get_pulls()]

    def dispatch_workflow(self, workflow_file: str, ref: str, inputs: Mapping[str, str]) -> None:
        with api_call(f"start workflow {workflow_file} on {ref}"):
            self._repo.get_workflow(workflow_file).create_dispatch(ref, dict(inputs), throw=True)

    def commit_ci(self, sha: str) -> list[CIReport]:
        """Every commit status (the latest per context) and check run (the latest per name)
        GitHub holds for commit `sha`."""
        with api_call(f"read the CI of {sha[:10]}"):
            commit = self._repo.get_commit(sha)
            reports = [
                CIReport(
                    "check_run",
                    run.name,
                    check_run_outcome(run.status, run.conclusion),
                    run.conclusion or run.status,
                    run.html_url,
                )
                for run in commit.get_check_runs()
            ]
            return self._statuses(commit.url) + reports

    def _statuses(self, commit_url: str) -> list[CIReport]:
        # PyGithub's get_combined_status reads only the first page of statuses; a failing
        # context on a later page must not be missed
        found: list[CIReport] = []
        page = 1
        while True:
            _, data = self._repo.requester.requestJsonAndCheck(
                "GET", f"{commit_url}/status", parameters={"per_page": PER_PAGE, "page": page}
            )
            statuses = data.get("statuses") or []
            found += [
                CIReport(
                    "status", s["context"], status_outcome(s["state"]), s["state"], s["target_url"]
                )
                for s in statuses
            ]
            if not statuses or len(found) >= data.get("total_count", 0):
                return found
            page += 1
