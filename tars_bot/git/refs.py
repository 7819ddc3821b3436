"""Refs: read, create, and move by compare-and-swap, waiting out another process's lock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pygit2

from tars_bot import faults
from tars_bot.errors import TarsError
from tars_bot.git.core import RepoCore

T = TypeVar("T")
LOCK_ATTEMPTS = 50
LOCK_RETRY_S = 0.02


class RefConflict(TarsError):
    """A ref was not where the caller expected it: someone else moved it."""


class Refs(RepoCore):
    def ref(self, name: str) -> str | None:
        ref = self._repo.references.get(name)
        return None if ref is None else str(ref.target)

    def refs(self, prefix: str) -> dict[str, str]:
        return {
            r.name: str(r.target)
            for r in self._repo.references.iterator()
            if r.name.startswith(prefix) and r.type == pygit2.enums.ReferenceType.DIRECT
        }

    def create_ref(self, name: str, target: str) -> bool:
        """Create `name` atomically; False if it already exists."""

        def create() -> bool:
            try:
                self._repo.references.create(name, target, force=False)
            except pygit2.AlreadyExistsError:
                return False
            return True

        return _retrying(name, create)

    def clear_stale_ref_lock(self, name: str) -> bool:
        """Remove the `.lock` file that a process killed mid-update left for ref `name`.
        Only for refs whose owner is known to be dead: a live writer's lock must stay."""
        lock = self.git_dir / f"{name}.lock"
        if lock.is_file():
            lock.unlink()
            return True
        return False

    def update_ref(self, name: str, new: str | None, expected: str | None) -> None:
        """Compare-and-swap: set (or, with new=None, delete) `name` only if it is at `expected`."""

        def swap() -> None:
            with self._repo.transaction() as txn:
                txn.lock_ref(name)
                current = self.ref(name)
                if current != expected:
                    raise RefConflict(f"{name} is at {current}, expected {expected}")
                faults.point("before-ref-update")
                if new is None:
                    txn.remove(name)
                else:
                    txn.set_target(name, new, message="tars-bot")

        _retrying(name, swap)
        faults.point("after-ref-update")


def _retrying(name: str, action: Callable[[], T]) -> T:
    """Run a ref update, retrying while another process holds the ref's lock file (concurrent
    executions meet there for milliseconds); a lock that stays is reported."""
    for attempt in range(LOCK_ATTEMPTS):
        try:
            return action()
        except (pygit2.GitError, OSError) as e:
            if attempt == LOCK_ATTEMPTS - 1:
                raise RefConflict(
                    f"{name}: {e}; if no other tars-bot process runs, `tars-bot recover` clears it"
                ) from None
            time.sleep(LOCK_RETRY_S)
    raise AssertionError("unreachable")
