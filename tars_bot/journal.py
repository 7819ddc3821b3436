"""Execution records kept in git refs, and per-improvement locks.

`refs/tars-bot/executions/<id>` points at a chain of commits, one per state change, whose trees
hold `execution.json`, `plan.json` and `logs/`. Each new record is written before the action it
announces, and the ref moves by compare-and-swap, so a killed process leaves a readable record.
The records' commits also keep the base and every step commit reachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Execution, ExecutionPlan

EXECUTIONS = "refs/tars-bot/executions/"
LOCKS = "refs/tars-bot/locks/"


class LockHeld(TarsError):
    """Another execution of the same improvement is running."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_execution_id() -> str:
    """Sorts by start time: 20261126-083012-345-9f2c."""
    t = datetime.now(UTC)
    return f"{t:%Y%m%d-%H%M%S}-{t.microsecond // 1000:03d}-{secrets.token_hex(2)}"


class Record:
    """The journal of one execution, written as it goes."""

    def __init__(self, repo: Repo, execution: Execution, plan: ExecutionPlan) -> None:
        self._repo = repo
        self._files = {"plan.json": plan.model_dump_json(indent=2).encode()}
        self._head: str | None = None
        self.execution = execution

    def save(self, execution: Execution, logs: dict[str, bytes] | None = None) -> None:
        """Record `execution` (and any new step logs) as the latest state."""
        self._files["execution.json"] = execution.model_dump_json(indent=2).encode()
        self._files.update({f"logs/{name}": data for name, data in (logs or {}).items()})
        keep = [c for c in (execution.base_commit, execution.head_commit) if c]
        parents = [self._head, *keep] if self._head else keep
        message = f"{execution.state}: {execution.improvement} ({execution.id})"
        commit = self._repo.write_snapshot(self._files, list(dict.fromkeys(parents)), message)
        self._repo.update_ref(EXECUTIONS + execution.id, commit, self._head)
        self._head = commit
        self.execution = execution


def load(repo: Repo, execution_id: str) -> Execution:
    commit = repo.ref(EXECUTIONS + execution_id)
    if commit is None:
        raise TarsError(f"execution {execution_id!r}: no such execution (see `tars-bot history`)")
    data = repo.commit_file(commit, "execution.json")
    assert data is not None, f"journal {execution_id} has no execution.json"
    return Execution.model_validate_json(data)


def read_log(repo: Repo, execution_id: str, name: str) -> bytes | None:
    commit = repo.ref(EXECUTIONS + execution_id)
    return None if commit is None else repo.commit_file(commit, f"logs/{name}")


def history(repo: Repo, limit: int | None = None) -> list[Execution]:
    ids = sorted((name.removeprefix(EXECUTIONS) for name in repo.refs(EXECUTIONS)), reverse=True)
    return [load(repo, execution_id) for execution_id in ids[:limit]]


def _owner(repo: Repo, name: str) -> dict[str, object]:
    commit = repo.ref(name)
    data = repo.commit_file(commit, "owner.json") if commit else None
    return json.loads(data) if data else {}


def _alive(pid: object, host: object) -> bool:
    if host != socket.gethostname() or not isinstance(pid, int):
        return True  # cannot tell for another machine: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def lock(repo: Repo, improvement_id: str, execution_id: str) -> Iterator[None]:
    """Hold the improvement's lock: a ref created atomically, naming its owner."""
    name = LOCKS + improvement_id
    owner = {
        "execution": execution_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": now(),
    }
    commit = repo.write_snapshot({"owner.json": json.dumps(owner).encode()}, [], f"lock {name}")
    if not repo.create_ref(name, commit):
        held = _owner(repo, name)
        gone = "" if _alive(held.get("pid"), held.get("host")) else " (that process is gone)"
        raise LockHeld(
            f"improvement {improvement_id!r} is already being executed by execution "
            f"{held.get('execution')} (pid {held.get('pid')} on {held.get('host')}){gone}"
        )
    try:
        yield
    finally:
        repo.update_ref(name, None, commit)
