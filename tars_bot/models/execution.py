"""Execution records: an execution's state, its steps' results, checks, culprits, landing."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import (
    Field,
    computed_field,
)

from tars_bot.models.base import Model

# unvalidated: a check could not run (broken noxfile, missing interpreter, timeout); the branch
# is kept for the user to validate again or roll back, since nothing is known to be wrong with it.
# After succeeded: merged (its change reached the default branch), closed (its pull request was
# closed unmerged), reverted (a revert execution undoes it on the default branch).
ExecutionState = Literal[
    "running",
    "validating",
    "succeeded",
    "failed",
    "rolled_back",
    "interrupted",
    "unvalidated",
    "merged",
    "closed",
    "reverted",
    "parked",
    "expired",
]
# parked: stopped after a gated step, waiting for a person's decision. No process runs, by
# design: `recover` never rolls it back; only a decision or its expiry ends it.
# expired: its gate waited longer than approval_timeout; on_expire kept or rolled it back.
# the groups of states, defined once; `Execution` names them as properties
IN_FLIGHT: tuple[ExecutionState, ...] = ("running", "validating")  # its process may still run
KEPT: tuple[ExecutionState, ...] = ("succeeded", "unvalidated")  # its branch is kept
AFTER_MERGE: tuple[ExecutionState, ...] = ("merged", "reverted")  # rollback means a revert
LANDS: tuple[ExecutionState, ...] = ("succeeded", "merged", "reverted")  # may be on the default
OK: tuple[ExecutionState, ...] = ("succeeded", "merged", "reverted", "closed")  # for history
BROKE: tuple[ExecutionState, ...] = ("failed", "rolled_back", "interrupted")  # for history
StepState = Literal["pending", "running", "applied", "failed", "reverted", "skipped"]


GateStatus = Literal["pending", "approved", "rejected", "expired"]
SHA_SHOWN = 10  # hex digits of a gate's commit in the command that approves it


class Decision(Model):
    """A person's decision on a gate, journaled before anything acts on it."""

    verdict: Literal["approve", "reject"]
    by: str = Field(description="Who decided: a GitHub login, or the local user.")
    permission: str | None = Field(None, description="Their permission on the repository.")
    via: Literal["cli", "comment", "check_run_action", "environment"]
    comment_id: int | None = Field(None, description="The comment that decided: acted on once.")
    at: str
    commit: str = Field(description="The commit decided on: the gate's, or the decision is void.")
    reason: str = ""


class Gate(Model):
    """A point where an execution waits for a person, bound to content: the commit, its tree and
    the plan digest. A moved branch, an edited plan or a re-executed step voids it."""

    id: str = Field(description="e.g. 'step-3', or 'promotion'.")
    kind: Literal["step", "pause", "promotion"] = Field(
        "step",
        description="step: a gated step; pause: asked for by `tars-bot pause`; promotion: to prod.",
    )
    step: int = Field(description="The step it follows: for a promotion, the last one.")
    commit: str
    tree: str
    plan_digest: str
    requested_at: str
    expires_at: str
    status: GateStatus = "pending"
    requirements: list[str] = Field(default_factory=list)
    decision: Decision | None = None


KNOWN_LISTED = 5  # known failures named in one line; the rest are counted


class TestReport(Model):
    """What pytest said of each test in a check: its JUnit XML report, or else only the counts
    of its summary line."""

    __test__ = False  # a model, not a test class for pytest to collect

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failing: list[str] | None = Field(
        None, description="Failed or errored tests (classname::name); null: only counts known."
    )


class CheckResult(Model):
    """One check on one tree. A failure is a result, not an exception."""

    check: str  # a nox session, tag:NAME, "ruff check", "ruff format", "compile" or "api"
    status: Literal["passed", "failed", "error"]  # error: the check itself could not run
    tree: str
    duration_s: float
    summary: str = ""  # e.g. "2 failed, 40 passed"
    output: str = ""  # the tail
    cached: bool = False
    tests: TestReport | None = Field(None, description="Per-test results, where pytest ran.")
    known_failures: list[str] | None = Field(
        None,
        description="Set on a failed final check whose failures the base has too, so none is "
        "blamed and the check counts as passed: those tests (empty: compared by count only).",
    )

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy#1362
    @property
    def passed(self) -> bool:
        return self.status == "passed" or self.known_failures is not None

    @property
    def fails(self) -> bool:
        """Failed, and not only where the base fails too: a failure of the tree checked."""
        return self.status == "failed" and self.known_failures is None

    def describe(self) -> str:
        kind = "nox session " if self.check not in QUICK_CHECKS else ""
        verdict = (
            "passed" if self.passed else ("could not run" if self.status == "error" else "failed")
        )
        known = f" with {self.known()}" if self.known_failures is not None else ""
        summary = f" ({self.summary})" if self.summary else ""
        return f"{kind}{self.check} {verdict}{known}{summary}"

    def known(self) -> str:
        """The failures the base has too, e.g. "1 test already failing on the base: t::x"."""
        if self.known_failures is None:
            return ""
        named = self.known_failures
        count = len(named) or (self.tests.failed + self.tests.errors if self.tests else 0)
        text = f"{count} test{'s' if count != 1 else ''} already failing on the base"
        if not named:
            return f"{text} (compared by count)"
        return f"{text}: {listing(named)}"


def listing(names: list[str], most: int = KNOWN_LISTED) -> str:
    """`names` joined, the first `most` of them and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


QUICK_CHECKS = ("ruff check", "ruff format", "compile", "api")


class Probe(Model):
    """One run (or cache hit) of a final check on one commit: the tip, or a bisection step."""

    check: str
    commit: str
    step: int | None = Field(
        description="The step whose commit this is; 0: the base; null: another commit."
    )
    status: Literal["passed", "failed", "error"]
    summary: str = ""
    duration_s: float
    cached: bool = False
    log: str | None = Field(None, description="Its output in the journal, e.g. logs/probe-3.log.")


class Culprit(Model):
    """The first step at which a final check fails, and the runs that found it."""

    step: int | None = Field(description="null: the check fails on the base already.")
    check: str
    summary: str = Field(description="The failing run's summary, e.g. '1 failed, 5 passed'.")
    result: CheckResult = Field(description="The failing run at the culprit's commit.")
    runs: int = Field(description="nox runs spent finding it, the tip's included.")
    duration_s: float
    probes: list[Probe]
    new_failures: list[str] = Field(
        default_factory=list, description="Tests failing at the culprit but not on the base."
    )
    known_failures: list[str] = Field(
        default_factory=list, description="Tests failing there and on the base: not blamed."
    )


class BenefitResult(Model):
    name: str
    measure: str
    expected: str | None  # the target, e.g. "-15%"
    before: float
    after: float
    change: float  # relative: -0.2 is 20% less
    met: bool | None  # None without a target
    required: bool = False


class HealResult(Model):
    """The repository's fixers (`heal` in the config) run on a step that failed a per-step
    check: kept as a second commit when the checks pass after them, else nothing is kept."""

    commands: list[str] = Field(description="The healers that ran, in order, each round.")
    rounds: int
    commit: str | None = Field(None, description="The heal commit; null: the heal was not kept.")
    failed: list[CheckResult] = Field(description="The checks that failed on the step's commit.")
    fixed: list[str] = Field(
        default_factory=list, description="Checks that failed before healing and pass after."
    )
    changed_files: list[str] = Field(default_factory=list)
    changed_lines: int = 0
    duration_s: float


class StepFailure(Model):
    """What a healer is told, in the JSON file TARS_FAILURE_FILE names."""

    step: int
    name: str
    scope: list[str] = Field(description="Where the step (and so its healer) may write.")
    changed_files: list[str] = Field(description="The files the step changed.")
    failed_checks: list[CheckResult] = Field(description="The checks failing now, with output.")
    round: int = Field(description="This round of healing, from 1.")
    rounds: int = Field(description="At most this many rounds (heal_attempts).")


class StepResult(Model):
    number: int
    name: str
    state: StepState = "pending"
    commit: str | None = None
    changed_files: list[str] = Field(default_factory=list)
    changed_lines: int = 0
    duration_s: float | None = None
    peak_memory_mb: float | None = None
    cpu_s: float | None = None
    exit_code: int | None = None
    network: Literal["isolated", "allowed", "unavailable"] | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    reason: str | None = None
    revert_commit: str | None = None
    heal: HealResult | None = None

    @property
    def commits(self) -> list[str]:
        """The step's commits on the branch: its own, then its heal's."""
        heal = self.heal.commit if self.heal else None
        return [c for c in (self.commit, heal) if c]


class SandboxReport(Model):
    """How an execution's processes were isolated."""

    mechanism: str = Field(description='e.g. "bubblewrap 0.11.0", or "none (sandbox = off)".')
    sandboxed: bool
    network: str = Field(description="Run steps: isolated | allowed; nox sessions: see checks.")
    memory: str = Field(description="How memory_mb is accounted.")


class LandedCommit(Model):
    step: int | None = Field(description="The step it carries; null: all of them (a squash).")
    commit: str


class Landing(Model):
    """How an execution's change reached the default branch."""

    kind: Literal["merge", "fast-forward", "rebase", "squash"]
    commit: str = Field(description="The merge or squash commit; the last commit otherwise.")
    onto: str = Field(description="The default branch just before the change landed.")
    commits: list[LandedCommit] = Field(
        description="The commits on the default branch that carry the change, oldest first."
    )
    found_by: Literal["git", "github"] = "git"


class Suspicion(Model):
    """A watched CI workflow failed on the default branch where this execution's change landed,
    having passed just before it."""

    workflow: str
    run_id: int
    run_url: str
    commit: str = Field(description="The commit the failing run tested.")
    revert: str | None = Field(None, description="The revert execution opened for it.")


EXECUTION_FORMAT: Final = "tars-bot.execution/1"


class Execution(Model):
    """The journaled record of one execution: `status --format json` prints exactly this."""

    format: Literal["tars-bot.execution/1"] = EXECUTION_FORMAT
    id: str
    improvement: str
    state: ExecutionState
    dry_run: bool = False
    branch: str | None
    base_commit: str
    head_commit: str | None = None
    started_at: str
    finished_at: str | None = None
    steps: list[StepResult]
    checks: list[CheckResult] = Field(default_factory=list)
    benefits: list[BenefitResult] = Field(default_factory=list)
    culprits: list[Culprit] = Field(
        default_factory=list, description="Steps that broke a final check: dropped or blamed."
    )
    failure_reason: str | None = None
    pull_request: str | None = None
    pushed_to: str | None = Field(None, description="The remote the branch was pushed to.")
    pid: int | None = None
    host: str | None = None
    sandbox: SandboxReport | None = None
    pending: str | None = Field(
        None, description="An action journaled but not yet completed: 'rollback' or 'revert:N,M'."
    )
    landed: Landing | None = Field(
        None, description="Set once the change is on the default branch."
    )
    reverts: str | None = Field(
        None, description="The merged execution this one reverts on the default branch."
    )
    step_reverted: int | None = Field(None, description="With `reverts`: the one step it reverts.")
    reverted_by: str | None = Field(None, description="The execution that reverts this one.")
    suspected: Suspicion | None = Field(
        None, description="Set while a watched CI workflow blames this execution's merge."
    )
    rolled_back_from: ExecutionState | None = Field(
        None,
        description="Set when a kept execution (succeeded, unvalidated) was rolled back "
        "afterwards: the state its run ended in, which is what it counts as in stats.",
    )
    gates: list[Gate] = Field(
        default_factory=list, description="Every gate of the execution, in order."
    )
    requested_by: str | None = Field(
        None, description="Who started the execution: `not_self` refuses their approval."
    )
    step_by_step: bool = Field(False, description="Executed with --step-by-step: every step gated.")
    resumed_at: str | None = Field(
        None, description="When its process last resumed it after a gate (pid and host are its)."
    )
    approved_through: int | None = Field(
        None, description="Gates up to this step are approved in advance (approve --through/--all)."
    )
    checks_stale: str | None = Field(
        None,
        description="Set when the tip moved past the tree its checks ran on (a step rollback): "
        "why, e.g. 'unvalidated since rollback of step 2'. Cleared by checks on the new tip.",
    )

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy#1362
    @property
    def continue_with(self) -> str | None:
        """The exact command that continues it while parked: approve the pending gate (with
        its step and commit), or resume a paused or already decided one."""
        gate = self.gate
        if self.state != "parked" or gate is None:
            return None
        if gate.status != "pending" or gate.kind == "pause":
            return f"tars-bot resume --execution-id {self.id}"
        return (
            f"tars-bot approve --execution-id {self.id} --step {gate.step} "
            f"--sha {gate.commit[:SHA_SHOWN]}"
        )

    @property
    def gate(self) -> Gate | None:
        """The gate it is parked at (or was last parked at)."""
        return self.gates[-1] if self.gates else None

    @property
    def in_flight(self) -> bool:
        """Running or validating, as journaled: its process may still be at work."""
        return self.state in IN_FLIGHT

    @property
    def kept(self) -> bool:
        """Its branch is kept (succeeded, or unvalidated for the user to decide)."""
        return self.state in KEPT

    def is_rolled_back(self, step: int | None = None) -> bool:
        """Whether what a rollback asks for is undone already: the execution, or its step."""
        if self.state == "rolled_back":
            return True
        if self.emptied:
            return False  # its rollback as a whole is still due
        return any(s.number == step and s.state == "reverted" for s in self.steps)

    @property
    def emptied(self) -> bool:
        """Kept, but every step that changed something is reverted: nothing of it is left."""
        states = {s.state for s in self.steps}
        return self.kept and "reverted" in states and "applied" not in states

    @property
    def after_merge(self) -> bool:
        """On the default branch: rolling it back means a revert there."""
        return self.state in AFTER_MERGE
