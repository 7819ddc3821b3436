"""The outcome index: every execution's latest record and the totals they add up to, in one ref.

refs/tars-bot/stats points at a commit (no parents: only the latest index matters) whose tree is

    totals.json                         learning.py's counters over all executions
    executions/<YYYYMMDD>/<id>.json     the execution.json its journal holds (the same blob)

`history` reads the newest entries only, so its cost follows the number asked for, not the number
of executions. The journal notes an execution when it starts and whenever it reaches a state that
lasts; `reconcile` catches up with journals fetched from elsewhere or left by a killed process,
and `rebuild` makes the index again from the journals alone (`tars-bot stats --rebuild`).
"""

from __future__ import annotations

import json

from tars_bot.errors import TarsError
from tars_bot.git import NewContent, RefConflict, Repo
from tars_bot.models import Execution, ExecutionPlan
from tars_bot.records import learning

STATS = "refs/tars-bot/stats"
TOTALS = "totals.json"
# in totals.json: bumped whenever what an execution contributes changes, so that an index made
# by an older tars-bot is rebuilt from the journals (2: rolled back after success)
INDEX_FORMAT = 2
SHARDS = "executions"
ATTEMPTS = 20  # compare-and-swap retries against concurrent executions


def note(repo: Repo, execution_id: str, journal_commit: str) -> None:
    """Index the record at `journal_commit` (the execution's journal head)."""
    _update(repo, {execution_id: journal_commit})


def reconcile(repo: Repo, heads: dict[str, str]) -> list[str]:
    """Index the journal heads (id -> commit) whose records the index lacks; their ids."""
    tree = _tree(repo)
    stale = {
        execution_id: head
        for execution_id, head in heads.items()
        if _entry(repo, tree, execution_id) != repo.blob_id(repo.tree_of(head), "execution.json")
    }
    if stale:
        _update(repo, stale)
    return sorted(stale)


def rebuild(repo: Repo, heads: dict[str, str]) -> int:
    """The index made again from the journal heads alone; how many executions it holds."""
    totals: learning.Totals = {}
    changes: dict[str, NewContent] = {}
    for execution_id, head in heads.items():
        execution, plan, data, _ = _read(repo, head)
        totals = learning.merge(totals, learning.contribution(execution, plan))
        changes[_path(execution_id)] = NewContent(data)
    changes[TOTALS] = NewContent(_dump(totals))
    _store(repo, repo.build_tree(None, changes), repo.ref(STATS))
    return len(heads)


def outdated(repo: Repo) -> bool:
    """Whether there is no index, or one an older tars-bot made (rebuild it)."""
    return repo.ref(STATS) is None or totals(repo).get("format") != INDEX_FORMAT


def totals(repo: Repo) -> learning.Totals:
    tree = _tree(repo)
    data = repo.read(tree, TOTALS) if tree else None
    return json.loads(data) if data else {}


def history(repo: Repo, limit: int | None) -> list[Execution] | None:
    """The newest `limit` executions as indexed, newest first; None when there is no index."""
    tree = _tree(repo)
    if tree is None:
        return None
    found: list[Execution] = []
    for blob in repo.newest_blobs(tree, SHARDS, limit):
        found.append(Execution.model_validate_json(blob))
    return found


# -- inside --------------------------------------------------------------------------------------
def _update(repo: Repo, heads: dict[str, str]) -> None:
    """Replace the entries of `heads` and move the totals by the difference, atomically."""
    records = {execution_id: _read(repo, head) for execution_id, head in heads.items()}
    for _ in range(ATTEMPTS):
        current = repo.ref(STATS)
        tree = repo.tree_of(current) if current else None
        change: learning.Totals = {}
        changes: dict[str, NewContent] = {}
        for execution_id, (execution, plan, data, blob) in records.items():
            old = _entry(repo, tree, execution_id)
            if old == blob:
                continue
            if old is not None:
                before = Execution.model_validate_json(repo.blob(old))
                change = learning.merge(change, learning.contribution(before, plan), -1)
            change = learning.merge(change, learning.contribution(execution, plan))
            changes[_path(execution_id)] = NewContent(data)
        if not changes:
            return
        old_totals = json.loads(repo.read(tree, TOTALS) or b"{}") if tree else {}
        changes[TOTALS] = NewContent(_dump(learning.merge(old_totals, change)))
        try:
            _store(repo, repo.build_tree(tree, changes), current)
            return
        except RefConflict:
            continue  # another execution moved the index: apply ours to theirs
    raise TarsError(f"{STATS}: too many concurrent updates; run `tars-bot stats --rebuild`")


def _store(repo: Repo, tree: str, expected: str | None) -> None:
    commit = repo.create_commit(tree, [], "tars-bot outcome index")
    repo.update_ref(STATS, commit, expected)


def _read(repo: Repo, head: str) -> tuple[Execution, ExecutionPlan | None, bytes, str]:
    """A journal head's record, its plan, the record's bytes and blob id."""
    tree = repo.tree_of(head)
    data, blob = repo.read(tree, "execution.json"), repo.blob_id(tree, "execution.json")
    if data is None or blob is None:
        raise TarsError(f"journal commit {head[:10]} has no execution.json")
    plan = repo.read(tree, "plan.json")
    parsed = ExecutionPlan.model_validate_json(plan) if plan else None
    return Execution.model_validate_json(data), parsed, data, blob


def _tree(repo: Repo) -> str | None:
    commit = repo.ref(STATS)
    return repo.tree_of(commit) if commit else None


def _entry(repo: Repo, tree: str | None, execution_id: str) -> str | None:
    return repo.blob_id(tree, _path(execution_id)) if tree else None


def _path(execution_id: str) -> str:
    return f"{SHARDS}/{execution_id[:8]}/{execution_id}.json"


def _dump(totals: learning.Totals) -> bytes:
    marked = totals | {"format": INDEX_FORMAT}
    return json.dumps(marked, sort_keys=True, separators=(",", ":")).encode()
