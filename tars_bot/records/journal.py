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
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from tars_bot import errors, faults
from tars_bot.errors import TarsError
from tars_bot.git import NewContent, Repo
from tars_bot.models import Execution, ExecutionPlan
from tars_bot.records import outcomes

EXECUTIONS = "refs/tars-bot/executions/"
LOCKS = "refs/tars-bot/locks/"
POOL = "refs/tars-bot/pool/"  # one lock per pooled worktree slot
BROKEN = "refs/tars-bot/broken/"  # unreadable journals set aside by `recover --set-aside`
PID_REUSE_SLACK_S = 2  # records carry whole seconds
M = TypeVar("M", Execution, ExecutionPlan)


class LockHeld(TarsError):
    """Another execution of the same improvement is running."""


class UnreadableJournal(TarsError):
    """A journal ref that does not lead to a valid execution record."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_execution_id() -> str:
    """Sorts by start time: 20261126-083012-345-9f2c."""
    t = datetime.now(UTC)
    return f"{t:%Y%m%d-%H%M%S}-{t.microsecond // 1000:03d}-{secrets.token_hex(2)}"


class Record:
    """The journal of one execution: each save is a commit on top of the previous one."""

    def __init__(self, repo: Repo, execution: Execution, head: str | None = None) -> None:
        self._repo, self._head, self.execution = repo, head, execution

    @classmethod
    def start(cls, repo: Repo, execution: Execution, plan: ExecutionPlan) -> Record:
        record = cls(repo, execution)
        record.save(execution, {"plan.json": plan.model_dump_json(indent=2).encode()})
        return record

    @classmethod
    def resume(cls, repo: Repo, execution_id: str) -> Record:
        head = repo.ref(EXECUTIONS + execution_id)
        if head is None:
            raise TarsError(
                f"execution {execution_id!r}: no such execution (see `tars-bot history`)"
            )
        return cls(repo, _execution_at(repo, EXECUTIONS + execution_id, head), head)

    def save(self, execution: Execution, files: dict[str, bytes] | None = None) -> None:
        """Record `execution` (and new files, such as logs) as the latest state."""
        changes = {"execution.json": execution.model_dump_json(indent=2).encode(), **(files or {})}
        tree = self._repo.build_tree(
            self._repo.tree_of(self._head) if self._head else None,
            {path: NewContent(data) for path, data in changes.items()},
        )
        keep = [c for c in (execution.base_commit, execution.head_commit) if c]
        parents = list(dict.fromkeys([self._head, *keep] if self._head else keep))
        message = f"{execution.state}: {execution.improvement} ({execution.id})"
        commit = self._repo.create_commit(tree, parents, message)
        faults.point("before-journal-update")
        self._repo.update_ref(EXECUTIONS + execution.id, commit, self._head)
        faults.point("after-journal-update")
        # its start, each lasting state, and a start again from one (a parked execution resumed)
        if self._head is None or not execution.in_flight or not self.execution.in_flight:
            outcomes.note(self._repo, execution.id, commit)
        self._head = commit
        self.execution = execution

    def update(
        self, *, push_to: str | None = None, token: str | None = None, **changes: object
    ) -> Execution:
        """Record the execution with `changes` as the latest state; with `push_to`, push the
        journal (and the outcome index) to that remote."""
        self.save(self.execution.model_copy(update=changes))
        if push_to is not None:
            self._repo.push(push_to, refspecs(self.execution.id), token)
        return self.execution


def refspecs(execution_id: str) -> list[str]:
    """The refspecs that push an execution's journal, and the outcome index with it (forced:
    whoever fetches it brings it up to date with the journals they fetch)."""
    ref = EXECUTIONS + execution_id
    return [f"+{ref}:{ref}", f"+{outcomes.STATS}:{outcomes.STATS}"]


def made_by_tars(
    repo: Repo, commit: str, *, execution: str | None = None, improvement: str | None = None
) -> bool:
    """Whether tars-bot made `commit`, as the trailers its commits carry say.

    The one rule: the commit is in this repository and has a `Tars-Improvement` trailer (every
    commit tars-bot makes has, see `executor.trailers` and step reverts), naming `improvement`
    when given (made by any execution of it, such as one a later execution superseded), and
    with a `Tars-Execution` trailer naming `execution` when given (made by that execution)."""
    if not repo.has_object(commit):
        return False
    trailers = repo.trailers(commit)
    made = trailers.get("Tars-Improvement")
    return (
        made is not None
        and improvement in (None, made)
        and execution in (None, trailers.get("Tars-Execution"))
    )


def _execution_at(repo: Repo, ref: str, commit: str) -> Execution:
    data = repo.file_at(commit, "execution.json")
    if data is None:
        raise UnreadableJournal(f"{ref}: {commit[:10]} is not a journal commit with execution.json")
    return _parsed(Execution, data, ref, "execution.json")


def _parsed(model: type[M], data: bytes, ref: str, name: str) -> M:
    try:
        return model.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the record"
        problem = f"{ref}: {name} is not a valid record ({where}: {first['msg']})"
        raise UnreadableJournal(problem) from None


def unreadable(repo: Repo) -> dict[str, str]:
    """The journal refs that hold no valid execution record (or an invalid plan): ref -> why."""
    found = {}
    for ref, commit in repo.refs(EXECUTIONS).items():
        try:
            _execution_at(repo, ref, commit)
            plan = repo.file_at(commit, "plan.json")
            if plan is not None:
                _parsed(ExecutionPlan, plan, ref, "plan.json")
        except UnreadableJournal as e:
            found[ref] = str(e)
    return found


# one warning per ref and opened repository (a command), however often the ref is read
_warned: weakref.WeakKeyDictionary[Repo, set[str]] = weakref.WeakKeyDictionary()


def _skip(repo: Repo, error: UnreadableJournal) -> None:
    warned = _warned.setdefault(repo, set())
    if str(error) not in warned:
        warned.add(str(error))
        errors.warn(f"skipped {error} (`tars-bot recover --set-aside` moves it aside)")


def set_aside(repo: Repo) -> list[str]:
    """Move each unreadable journal ref under refs/tars-bot/broken/, keeping its objects: the
    new name is made before the old one goes, so the journal is never lost. What was done."""
    done = []
    for ref, why in unreadable(repo).items():
        target = repo.ref(ref)
        assert target is not None  # just listed
        aside = BROKEN + ref.removeprefix("refs/tars-bot/")
        if not repo.create_ref(aside, target):
            aside += "-" + secrets.token_hex(2)  # set aside before under this name
            repo.create_ref(aside, target)
        repo.update_ref(ref, None, target)
        done.append(
            f"set aside {ref} as {aside} ({why.removeprefix(ref + ': ')}); "
            f"undo: git update-ref {ref} {aside} && git update-ref -d {aside}"
        )
    return done


def load(repo: Repo, execution_id: str) -> Execution:
    return Record.resume(repo, execution_id).execution


def load_plan(repo: Repo, execution_id: str) -> ExecutionPlan:
    commit = repo.ref(EXECUTIONS + execution_id)
    data = repo.file_at(commit, "plan.json") if commit else None
    if data is None:
        raise TarsError(f"execution {execution_id!r}: no plan in its journal")
    return _parsed(ExecutionPlan, data, EXECUTIONS + execution_id, "plan.json")


def read_log(repo: Repo, execution_id: str, name: str) -> bytes | None:
    commit = repo.ref(EXECUTIONS + execution_id)
    return None if commit is None else repo.commit_file(commit, f"logs/{name}")


def history(repo: Repo, limit: int | None = None) -> list[Execution]:
    """The newest `limit` executions, newest first, from the outcome index (built from the
    journals when a repository has none yet); those still running as their journals say."""
    indexed = outcomes.history(repo, limit)
    if indexed is None:
        if not repo.refs(EXECUTIONS):
            return []
        outcomes.rebuild(repo, heads(repo))
        indexed = outcomes.history(repo, limit) or []
    found = []
    for execution in indexed:
        try:
            found.append(load(repo, execution.id) if execution.in_flight else execution)
        except UnreadableJournal as e:
            _skip(repo, e)
    return found


def heads(repo: Repo) -> dict[str, str]:
    """Every readable execution journal's head: id -> commit. An unreadable one is skipped
    with a warning, so that one broken ref does not stop every command."""
    broken = unreadable(repo)
    for why in broken.values():
        _skip(repo, UnreadableJournal(why))
    return {
        name.removeprefix(EXECUTIONS): target
        for name, target in repo.refs(EXECUTIONS).items()
        if name not in broken
    }


def execution_ids(repo: Repo) -> set[str]:
    return {name.removeprefix(EXECUTIONS) for name in repo.refs(EXECUTIONS)}


def _owner(repo: Repo, name: str) -> dict[str, object]:
    commit = repo.ref(name)
    data = repo.commit_file(commit, "owner.json") if commit else None
    return json.loads(data) if data else {}


def lock_owner(repo: Repo, improvement_id: str) -> dict[str, object]:
    return _owner(repo, LOCKS + improvement_id)


def process_alive(pid: object, host: object, started_at: object = None) -> bool:
    """Whether the process that wrote a record may still run. One on another machine is assumed
    to; one whose pid now belongs to a process started later is gone (the pid was reused)."""
    if host != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _started_after(pid, started_at)


def _started_after(pid: int, started_at: object) -> bool:
    if not isinstance(started_at, str):
        return False
    try:
        began = Path(f"/proc/{pid}").stat().st_ctime  # Linux: when the process started
        recorded = datetime.fromisoformat(started_at).timestamp()
    except (OSError, ValueError):
        return False
    return began > recorded + PID_REUSE_SLACK_S


def release_stale_locks(repo: Repo) -> list[str]:
    """Delete locks whose owner process is gone; returns the improvements they locked."""
    released = []
    for prefix in (LOCKS, POOL):
        for name, target in repo.refs(prefix).items():
            owner = _owner(repo, name)
            if not process_alive(owner.get("pid"), owner.get("host"), owner.get("started_at")):
                repo.clear_stale_ref_lock(name)
                repo.update_ref(name, None, target)
                released.append(name.removeprefix("refs/tars-bot/"))
        # a lock being created when its process died: no owner to ask, so recover assumes that
        # no tars-bot command is starting while it runs
        for lock_file in (repo.git_dir / prefix).glob("**/*.lock"):
            name = str(lock_file.relative_to(repo.git_dir)).removesuffix(".lock")
            if repo.ref(name) is None and repo.clear_stale_ref_lock(name):
                released.append(name.removeprefix("refs/tars-bot/"))
    return released


def try_hold(repo: Repo, name: str, owner_id: str) -> str | None:
    """Create lock ref `name` atomically, naming this process; its commit, or None if held."""
    owner = {"execution": owner_id, "pid": os.getpid(), "host": socket.gethostname()}
    owner["started_at"] = now()
    tree = repo.build_tree(None, {"owner.json": NewContent(json.dumps(owner).encode())})
    commit = repo.create_commit(tree, [], f"lock {name}")
    return commit if repo.create_ref(name, commit) else None


@contextlib.contextmanager
def lock(repo: Repo, improvement_id: str, execution_id: str) -> Iterator[None]:
    """Hold the improvement's lock: a ref created atomically, naming its owner."""
    name = LOCKS + improvement_id
    commit = try_hold(repo, name, execution_id)
    if commit is None:
        held = _owner(repo, name)
        alive = process_alive(held.get("pid"), held.get("host"), held.get("started_at"))
        gone = "" if alive else "; that process is gone: run `tars-bot recover`"
        raise LockHeld(
            f"improvement {improvement_id!r} is already being executed by execution "
            f"{held.get('execution')} (pid {held.get('pid')} on {held.get('host')}){gone}"
        )
    try:
        yield
    finally:
        repo.update_ref(name, None, commit)
