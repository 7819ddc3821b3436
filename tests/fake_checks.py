"""Check runs on the fake GitHub (`POST /repos/{owner}/{repo}/check-runs`), kept in
`Repo.check_runs` as GitHub shows them, with the annotations posted under "annotations".

As on GitHub, only a GitHub App's token (Actions' GITHUB_TOKEN is one) may create a check run,
on a commit the repository holds; the answer has the shape of GitHub's documented example."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.fake_github import HTTPError, Repo, Response, _Call, _now, _route


@_route("POST /repos/{owner}/{repo}/check-runs")
def _create_check_run(call: _Call) -> Response:
    if not call.installation:
        raise HTTPError(403, "You must authenticate via a GitHub App.")
    repo, body = call.repo, call.body
    if repo.clone_url and not _has_commit(repo.clone_url, body["head_sha"]):
        message = f"No commit found for SHA: {body['head_sha']}"
        error = {"resource": "CheckRun", "code": "custom", "field": "head_sha", "message": message}
        raise HTTPError(422, "Validation Failed", [error])
    conclusion = body.get("conclusion")
    status = "completed" if conclusion else body.get("status", "queued")
    if (status == "completed" or body.get("completed_at")) and not conclusion:
        error = {"resource": "CheckRun", "code": "missing_field", "field": "conclusion"}
        raise HTTPError(422, "Validation Failed", [error])
    run_id = call.gh.new_id()
    url = f"{call.gh.url}/repos/{repo.full_name}/check-runs/{run_id}"
    output = body.get("output") or {}
    annotations = output.get("annotations", [])
    run: dict[str, Any] = {
        "id": run_id,
        "head_sha": body["head_sha"],
        "node_id": f"CR_{run_id}",
        "external_id": body.get("external_id", ""),
        "url": url,
        "html_url": f"https://github.com/{repo.full_name}/runs/{run_id}",
        "details_url": body.get("details_url"),
        "status": status,
        "conclusion": conclusion,
        "started_at": body.get("started_at") or _now(),
        "completed_at": body.get("completed_at") or (_now() if conclusion else None),
        "output": {
            "title": output.get("title"),
            "summary": output.get("summary"),
            "text": output.get("text"),
            "annotations_count": len(annotations),
            "annotations_url": f"{url}/annotations",
        },
        "name": body["name"],
        "check_suite": {"id": call.gh.new_id()},
        "app": None,
        "pull_requests": [],  # the fake's pull requests have no real head commit to match
    }
    repo.check_runs[run_id] = run | {"annotations": annotations}
    return Response(201, run)


def _has_commit(clone_url: str, sha: str) -> bool:
    """Whether the repository's git directory, when it is a local one, holds commit `sha`."""
    if not Path(clone_url).exists():
        return True
    found = subprocess.run(
        ["git", "--git-dir", clone_url, "cat-file", "-e", f"{sha}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


@_route("GET /repos/{owner}/{repo}/commits/{ref}/check-runs")
def _check_runs_of_commit(call: _Call) -> Response:
    # filter=latest (the default): the newest run of each name
    runs = [r for r in call.repo.check_runs.values() if r["head_sha"] == call.params["ref"]]
    if call.query.get("filter", "latest") == "latest":
        runs = list({r["name"]: r for r in runs}.values())
    shown = [{k: v for k, v in r.items() if k != "annotations"} for r in runs[::-1]]
    page = call.page(shown)
    return Response(200, {"total_count": len(shown), "check_runs": page.body}, page.headers)


def add_check_run(
    repo: Repo, sha: str, name: str, status: str = "completed", conclusion: str | None = "success"
) -> dict[str, Any]:
    """A check run on `sha` made by some other app (a CI), seeded without a request."""
    run_id = repo.server.new_id()
    url = f"{repo.server.url}/repos/{repo.full_name}/check-runs/{run_id}"
    run: dict[str, Any] = {
        "id": run_id,
        "head_sha": sha,
        "node_id": f"CR_{run_id}",
        "external_id": "",
        "url": url,
        "html_url": f"https://github.com/{repo.full_name}/runs/{run_id}",
        "details_url": None,
        "status": status,
        "conclusion": conclusion,
        "started_at": _now(),
        "completed_at": _now() if status == "completed" else None,
        "output": {"title": None, "summary": None, "text": None, "annotations_count": 0,
                   "annotations_url": f"{url}/annotations"},
        "name": name,
        "check_suite": {"id": repo.server.new_id()},
        "app": None,
        "pull_requests": [],
    }  # fmt: skip
    repo.check_runs[run_id] = run | {"annotations": []}
    return run
