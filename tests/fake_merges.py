"""Merging a pull request on the fake GitHub (`PUT /repos/{owner}/{repo}/pulls/{n}/merge`).

Where the repository's clone URL is a local bare repository, the merge is made there for real,
as GitHub makes it: a merge commit, a squash commit whose message lists the squashed commits'
messages, or the commits rebased onto the base; the base branch moves. As on GitHub, a `sha`
that is not the head's is refused with 409 and nothing is merged."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.fake_github import HTTPError, Issue, Repo, Response, _Call, _route, _sha


@_route("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge")
def _merge_pull(call: _Call) -> Response:
    repo, pull = call.repo, call.issue(pulls_only=True)
    if pull.state != "open":
        raise HTTPError(405, "Pull Request is not mergeable")
    local = repo.clone_url is not None and Path(repo.clone_url).exists()
    head = _git(repo.clone_url, "rev-parse", f"refs/heads/{pull.head_ref}") if local else None
    head = head or pull.head_sha
    sha = call.field("sha", "PullRequest")
    if sha is not None and sha != head:
        raise HTTPError(409, "Head branch was modified. Review and try the merge again.")
    method = call.field("merge_method", "PullRequest") or "merge"
    commit = (
        _merge(repo, pull, method) if local else _sha(repo.full_name, "merge", str(pull.number))
    )
    repo.merge_pull(pull, commit)
    return Response(
        200, {"sha": commit, "merged": True, "message": "Pull Request successfully merged"}
    )


def _merge(repo: Repo, pull: Issue, method: str) -> str:
    """Merge in a throwaway clone of the bare repository and push the base branch back."""
    assert repo.clone_url is not None and pull.head_ref and pull.base_ref
    with tempfile.TemporaryDirectory() as scratch:
        work = str(Path(scratch) / "work")
        _git(None, "clone", "-q", "-b", pull.base_ref, repo.clone_url, work)
        head, title = f"origin/{pull.head_ref}", f"{pull.title} (#{pull.number})"
        if method == "merge":
            message = f"Merge pull request #{pull.number} from {pull.head_ref}\n\n{pull.title}"
            _git(work, "merge", "-q", "--no-ff", "-m", message, head)
        elif method == "squash":
            log = _git(work, "log", "--reverse", "--format=* %B", f"HEAD..{head}")
            _git(work, "merge", "-q", "--squash", head)
            _git(work, "commit", "-q", "-m", f"{title}\n\n{log}")
        else:
            _git(work, "checkout", "-q", "-B", "rebased", head)
            _git(work, "rebase", "-q", pull.base_ref)
            _git(work, "checkout", "-q", pull.base_ref)
            _git(work, "merge", "-q", "--ff-only", "rebased")
        _git(work, "push", "-q", "origin", f"HEAD:{pull.base_ref}")
        return _git(work, "rev-parse", "HEAD")


def _git(cwd: str | None, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HTTPError(405, f"Pull Request is not mergeable: {done.stderr.strip()}")
    return done.stdout.strip()
