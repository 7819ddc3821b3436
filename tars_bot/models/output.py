"""What `--format json` prints, beyond the plan and the execution records (which carry their own
`format`; `history` prints a list of execution records): each output a model, versioned by a
top-level `format` naming it, so that a script can tell what it reads and `tars-bot schema
--kind KIND` can describe it."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import ConfigDict, Field

from tars_bot.models.base import Model
from tars_bot.models.execution import CheckResult

VALIDATE_FORMAT: Final = "tars-bot.validate/1"
STATS_FORMAT: Final = "tars-bot.stats/1"
SANDBOX_FORMAT: Final = "tars-bot.sandbox/1"
ERROR_FORMAT: Final = "tars-bot.error/1"
CHECK_FORMAT: Final = "tars-bot.check/1"
PROMOTE_FORMAT: Final = "tars-bot.promote/1"


class Validated(Model):
    """`tars-bot validate --format json`: each check's result on the execution's tip."""

    format: Literal["tars-bot.validate/1"] = VALIDATE_FORMAT
    results: list[CheckResult]


class Ranked(Model):
    name: str
    steps: int
    broke: int
    rate: float | None


class CheckStats(Model):
    model_config = ConfigDict(extra="allow")  # counts the index adds later break no reader
    check: str
    runs: int
    failed: int
    mean_s: float


class CulpritSearch(Model):
    model_config = ConfigDict(extra="allow")
    runs: int
    runs_checking_each_step: int
    seconds_saved: float


class Cache(Model):
    model_config = ConfigDict(extra="allow")
    hits: int
    seconds_saved: float


class Stats(Model):
    """`tars-bot stats --format json`: what the outcome index says of all executions."""

    model_config = ConfigDict(extra="allow")
    format: Literal["tars-bot.stats/1"] = STATS_FORMAT
    executions: int
    by_state: dict[str, int] = Field(description="Executions per state (raw state names).")
    success_rate: float | None
    steps: int
    steps_that_broke_a_check: int
    healed_steps: int
    rolled_back_later: int = Field(
        0, description="Executions that succeeded (counted so) and were rolled back afterwards."
    )
    failing_paths: list[Ranked]
    failing_kinds: list[Ranked]
    checks: list[CheckStats]
    culprit_search: CulpritSearch
    cache: Cache
    weeks: dict[str, dict[str, int]] = Field(description="ISO week -> state -> executions.")


class Mount(Model):
    kind: str
    dest: str
    why: str
    source: str = ""
    size_mb: int | None = None


class SandboxView(Model):
    """`tars-bot sandbox --format json`: what a sandboxed process sees (no mounts: no sandbox)."""

    format: Literal["tars-bot.sandbox/1"] = SANDBOX_FORMAT
    mechanism: str
    mounts: list[Mount]
    left_out: list[str] = Field(description="Directories kept out of the view, with why.")


class CheckedFile(Model):
    path: str
    ok: bool = Field(description="No problem found (warnings and notes are not problems).")
    problems: list[str] = Field(description="One line each, naming where and why.")
    warnings: list[str]
    notes: list[str] = Field(description="What was not checked, and why.")
    sessions: str = Field(
        description='How the session names were known: "read from noxfile.py statically", '
        '"listed by nox", "not checked", "no noxfile.py"; empty when there was none to check.'
    )


class Checked(Model):
    """`tars-bot check --format json`: each improvement file checked, and the files skipped
    (with --hook) for lying outside the improvements dir."""

    format: Literal["tars-bot.check/1"] = CHECK_FORMAT
    files: list[CheckedFile]
    skipped: list[str]


class Problems(Model):
    exit_code: int
    problems: list[str] = Field(description="One line each, naming where and why.")


class Error(Model):
    """What any command prints with `--format json` when it ends in an error instead."""

    format: Literal["tars-bot.error/1"] = ERROR_FORMAT
    error: Problems


class RequirementFinding(Model):
    name: str = Field(description="approved, checks_green, undiverged, plan_digest or not_self.")
    met: bool
    why: str


class PromotionCheck(Model):
    """`tars-bot promote --check --format json`: each prod requirement, met or not, and why."""

    format: Literal["tars-bot.promote/1"] = PROMOTE_FORMAT
    execution: str
    head_commit: str | None
    promotable: bool = Field(description="Every requirement is met.")
    requirements: list[RequirementFinding]


PENDING_FORMAT: Final = "tars-bot.pending/1"


class ParkedExecution(Model):
    """One parked execution: the gate it waits at and the command that continues it."""

    id: str
    improvement: str
    gate: str = Field(description="e.g. 'step-3'.")
    step: int
    commit: str = Field(description="The gate's commit: what an approval approves.")
    status: str = Field(description="pending; approved or rejected: decided, not yet resumed.")
    expires_at: str
    command: str = Field(description="The exact command that continues it.")


class Pending(Model):
    """`tars-bot pending --format json`: parked executions, newest first."""

    format: Literal["tars-bot.pending/1"] = PENDING_FORMAT
    parked: list[ParkedExecution]
