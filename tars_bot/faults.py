"""Fault injection for crash tests: `TARS_BOT_FAULT=<point>[:<n>]` kills the process with
SIGKILL the n-th time (default: the first) it reaches the named point.

Points, in the order an execution meets them:
  before-journal-update   a journal commit is written, its ref not yet moved
  after-journal-update    the journal ref moved
  after-worktree-add      the worktree for run steps exists
  after-step-commit       a step's commit exists, the branch not yet moved
  after-heal-commit       a healed step's heal commit exists and is journaled, the branch not
                          yet moved to it
  before-ref-update       a compare-and-swap ref update is about to happen
  after-ref-update        it happened
  mid-rollback            the branch is deleted, the journal not yet updated
  after-parked            a gate and `parked` are journaled, the worktree and lock still held
  after-decision          an approval (or rejection) is journaled, nothing acted on it yet
  after-resume-start      a resume journaled `running`, before any worktree or step
  after-resumed-step-commit  the first step after the gate is committed, not yet journaled
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def point(name: str) -> None:
    fault = os.environ.get("TARS_BOT_FAULT")
    if not fault or not fault.startswith(name):
        return
    target, _, nth = fault.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
