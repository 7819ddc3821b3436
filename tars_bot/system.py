"""ExecutionSystem: the library API that the CLI and the GitHub integration call.

A facade: each method delegates to the component that does the job (`execution.orchestrate`,
`rollback.lifecycle`, `records.sharing`, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tars_bot.config import Config, config_at
from tars_bot.errors import TarsError
from tars_bot.execution import gates, handoff, orchestrate, resuming
from tars_bot.execution.orchestrate import ExecutionResult, Progress, Silent
from tars_bot.execution.sandbox import SandboxInfo, open_sandbox
from tars_bot.execution.view import View
from tars_bot.git import Repo
from tars_bot.models import CheckResult, Execution, ExecutionPlan, Improvement, Suspicion
from tars_bot.planning import loader, planner
from tars_bot.records import journal, learning, naming, sharing
from tars_bot.rollback import lifecycle, undo
from tars_bot.rollback.revert import default_tip
from tars_bot.stages import promotion
from tars_bot.stages.ci import CIReport
from tars_bot.stages.requirements import Finding
from tars_bot.validation import final_checks

__all__ = ["ExecutionResult", "ExecutionSystem", "Progress", "Silent"]


class ExecutionSystem:
    """tars-bot on one repository."""

    def __init__(self, repo_path: Path | str = ".") -> None:
        self.repo = Repo(repo_path)

    # -- configuration and plans -----------------------------------------------------------------
    def config(self, ref: str = "HEAD") -> Config:
        return config_at(self.repo, ref)

    def sandbox(self, ref: str = "HEAD") -> SandboxInfo:
        """How processes an improvement controls would be isolated; raises where the
        configuration requires a sandbox that cannot be set up here."""
        return open_sandbox(self.config(ref), self.repo).info

    def sandbox_view(self, *, check: bool, ref: str = "HEAD") -> tuple[SandboxInfo, View | None]:
        """What a run step (or a check) would see in one of this repository's worktrees; the
        view is None where the sandbox is off."""
        return orchestrate.sandbox_view(self.repo, self.config(ref), check=check)

    def improvement_file(self, improvement_id: str, ref: str = "HEAD") -> Path:
        """The improvement file for `improvement_id` in the working tree's improvements dir."""
        improvements = self.repo.workdir / self.config(ref).improvements_dir
        return loader.find_improvement_file(improvements, improvement_id)

    def load_improvement(self, path: Path) -> Improvement:
        return loader.load_improvement(path, display=self.display_path(path))

    def plan(
        self, improvement: Improvement, *, base: str = "HEAD", source: str | None = None
    ) -> ExecutionPlan:
        return planner.plan(self.repo, improvement, base_ref=base, source=source)

    def rebase(self, plan: ExecutionPlan) -> ExecutionPlan:
        """The plan's improvement planned again on where its base ref is now."""
        orchestrate.check_integrity(self.repo, plan)
        return self.plan(plan.improvement, base=plan.base.ref)

    def risks(self, plan: ExecutionPlan) -> list[learning.Risk] | None:
        """Each planned step's chance of breaking a check, from the outcome index."""
        return orchestrate.risks_of(self.repo, plan)

    # -- execution -------------------------------------------------------------------------------
    def execute(
        self,
        plan: ExecutionPlan,
        dry_run: bool = False,
        progress: Progress | None = None,
        fresh: bool = False,
        *,
        reverts: tuple[str, int | None] | None = None,
        step_by_step: bool = False,
        requested_by: str | None = None,
    ) -> ExecutionResult:
        """Execute the plan: each step a commit on its branch (`orchestrate.execute`); it parks
        after a gated step (after every step with `step_by_step`) and returns."""
        return orchestrate.execute(
            self.repo,
            plan,
            dry_run=dry_run,
            progress=progress,
            fresh=fresh,
            reverts=reverts,
            step_by_step=step_by_step,
            requested_by=requested_by,
        )

    # -- gates -----------------------------------------------------------------------------------
    def approve(
        self, execution_id: str, ask: gates.Ask, progress: Progress | None = None
    ) -> ExecutionResult:
        """Approve the pending gate (journaled first), then continue the execution."""
        return resuming.approve(self.repo, execution_id, ask, progress)

    def reject(
        self, execution_id: str, ask: gates.Ask, progress: Progress | None = None
    ) -> ExecutionResult:
        """Reject the pending gate; `on_reject` rolls back, or reverts the step and goes on."""
        return resuming.reject(self.repo, execution_id, ask, progress)

    def resume(self, execution_id: str, progress: Progress | None = None) -> ExecutionResult:
        """Continue a paused execution, or one whose decided gate a killed resume left."""
        return resuming.resume(self.repo, execution_id, progress)

    def gate_diff(self, execution_id: str) -> str:
        """What the step its pending gate is after changed: the diff a person approves."""
        return gates.diff_of(self.repo, journal.load(self.repo, execution_id))

    def pause(self, execution_id: str) -> Execution:
        """Ask a running execution to park before its next step."""
        return gates.ask_pause(self.repo, execution_id)

    def pending(self) -> list[Execution]:
        """Parked executions, newest first (expired gates expire first)."""
        gates.expire_due(self.repo)
        return [e for e in journal.history(self.repo) if e.state == "parked"]

    def validate(
        self, execution_id: str, checks: list[str] | None = None, fresh: bool = False
    ) -> list[CheckResult]:
        """Run checks (default: the plan's final ones) on the execution's result again; results
        already known for that tree come from the cache."""
        return final_checks.check_again(self.repo, execution_id, checks, fresh=fresh)

    def rollback(
        self,
        execution_id: str,
        step: int | None = None,
        cascade: bool = False,
        token: str | None = None,
    ) -> Execution:
        """Undo a whole execution, or one step (and, with cascade, the steps built on it).
        When the branch was pushed, the remote follows: its branch deleted, or updated."""
        return lifecycle.roll_back(self.repo, execution_id, step, cascade, token)

    def recover(self, set_aside: bool = False) -> list[str]:
        """Finish or undo what killed processes left behind; returns what was done. With
        `set_aside`, unreadable journal refs are moved under refs/tars-bot/broken/ first."""
        done = journal.set_aside(self.repo) if set_aside else []
        done += undo.recover(self.repo)
        return done + [f"expired execution {e.id}" for e in gates.expire_due(self.repo)]

    # -- sharing ---------------------------------------------------------------------------------
    def push(
        self, execution_id: str, remote: str = "origin", token: str | None = None
    ) -> Execution:
        """Push the branch and the journal. A remote branch holding commits tars-bot did not
        make is never overwritten."""
        return sharing.push(self.repo, execution_id, remote, token)

    def record_pull_request(
        self, execution_id: str, url: str, remote: str = "origin", token: str | None = None
    ) -> None:
        record = journal.Record.resume(self.repo, execution_id)
        record.update(pull_request=url, push_to=remote, token=token)

    def hand_off(self, execution_id: str, path: Path) -> None:
        """Write the execution's branch and journal as a git bundle, for a job that may push."""
        handoff.write_bundle(self.repo, journal.load(self.repo, execution_id), path)

    def receive(self, path: Path, improvement: Improvement, trusted: str = "HEAD") -> Execution:
        """Take a bundle from a job without write access: checked against the plan of
        `improvement` computed here, on a base that is `trusted` or behind it, before its branch
        and journal get their names. Raises handoff.HandoffRefused naming what is wrong."""
        return handoff.receive(self.repo, path, improvement, trusted)

    def fetch_branch(
        self, execution_id: str, remote: str = "origin", token: str | None = None
    ) -> None:
        """Bring a parked execution's branch from `remote`: a resume in another run (or on
        another runner) continues from what the run that parked it pushed."""
        sharing.fetch_branch(self.repo, journal.load(self.repo, execution_id), remote, token)

    def update_remote(self, execution_id: str, old_tip: str | None, token: str | None) -> None:
        """After a pushed execution moved on (rolled back, failed): the remote follows."""
        execution = journal.load(self.repo, execution_id)
        if execution.pushed_to and execution.branch:
            sharing.update_remote(self.repo, execution, old_tip, token)

    def fetch_journal(self, remote: str = "origin", token: str | None = None) -> None:
        """Bring the executions recorded elsewhere (e.g. by CI) into this repository."""
        sharing.fetch_journal(self.repo, remote, token)

    # -- records ---------------------------------------------------------------------------------
    def execution_id(self, given: str | None, improvement: str | None = None) -> str:
        """The full id of the execution named by `given` (the id, a unique prefix, or
        `latest`), or of `improvement`'s latest execution."""
        return naming.resolve(self.repo, given, improvement)

    def plan_of(self, execution_id: str) -> ExecutionPlan:
        return journal.load_plan(self.repo, execution_id)

    def step_log(self, execution_id: str, number: int) -> bytes | None:
        return journal.read_log(self.repo, execution_id, f"step-{number}.log")

    def status(self, execution_id: str, onto: str | None = None) -> Execution:
        """The execution as journaled, its state carried on past `succeeded` (merged, reverted)
        by what the default branch (`onto`, or found) holds now. A parked execution whose gate
        waited too long expires first."""
        gates.expire_if_due(self.repo, execution_id)
        return lifecycle.status(self.repo, execution_id, onto)

    def history(self, limit: int | None = None, onto: str | None = None) -> list[Execution]:
        return lifecycle.history(self.repo, limit, onto)

    def stats(self, rebuild: bool = False) -> dict[str, Any]:
        """What the outcome index says of all executions (learning.summary); `rebuild` makes the
        index again from the journals first. Merges the default branch shows are journaled
        first, so that they count as merged."""
        return lifecycle.stats(self.repo, rebuild)

    # -- after the pull request ------------------------------------------------------------------
    def record_merges(self) -> list[str]:
        """Journal as merged the succeeded executions whose change the default branch holds;
        their ids."""
        return lifecycle.record_merges(self.repo)

    def record_landing(
        self,
        execution_id: str,
        merge_commit: str | None,
        closed: bool,
        remote: str | None = None,
        token: str | None = None,
    ) -> Execution:
        """What GitHub says became of the execution's pull request: merged as `merge_commit`,
        or closed unmerged; the journal is pushed to `remote` when given."""
        return lifecycle.record_landing(
            self.repo, execution_id, merge_commit, closed, remote, token
        )

    def landed_at(self, commit: str, onto: str | None = None) -> Execution | None:
        """The merged execution whose change landed as `commit` on the default branch."""
        return lifecycle.landed_at(self.repo, commit, onto)

    def note_suspicion(
        self,
        execution_id: str,
        suspicion: Suspicion | None,
        remote: str | None = "origin",
        token: str | None = None,
    ) -> Execution:
        """Record (or clear) what a watched CI run says of a merged execution, with its
        landing, and push the journal to `remote` (None: keep it here)."""
        return lifecycle.note_suspicion(self.repo, execution_id, suspicion, remote, token)

    def revert(
        self,
        execution_id: str,
        step: int | None = None,
        onto: str | None = None,
        progress: Progress | None = None,
        remote: str | None = None,
        token: str | None = None,
    ) -> ExecutionResult:
        """Undo a merged execution (or one step of it) on a new branch from the default branch:
        planned, executed and checked as any improvement is; never on the default branch. The
        original's journal, which names its revert, is pushed to `remote` when given."""
        return lifecycle.revert_merged(self.repo, execution_id, step, onto, progress, remote, token)

    def revert_plan(
        self, execution_id: str, step: int | None = None, onto: str | None = None
    ) -> ExecutionPlan:
        """The plan of the revert of a merged execution (or of its step), on the default
        branch as it is now: the same wherever the same history is."""
        return lifecycle.revert_plan(self.repo, execution_id, step, onto)

    def mark_reverted(
        self,
        execution_id: str,
        revert_id: str,
        remote: str | None = None,
        token: str | None = None,
    ) -> None:
        """Record on a merged execution the execution that reverts it (pushed to `remote`)."""
        lifecycle.mark_reverted(self.repo, execution_id, revert_id, remote, token)

    # -- for messages ----------------------------------------------------------------------------
    # -- stages -----------------------------------------------------------------------------------
    def promotion_check(
        self,
        execution_id: str,
        *,
        requester: str | None,
        ci: list[CIReport] | None,
        onto: str | None = None,
    ) -> list[Finding]:
        """What promoting the execution to prod requires, each judged against the default
        branch (`onto`, or found) as it is now."""
        tip = default_tip(self.repo, onto)
        if tip is None:
            raise TarsError("cannot tell the default branch to promote onto; name it with --onto")
        requirements = self.config(tip).stages.prod.requirements()  # the base's, trusted
        return promotion.check(
            self.repo,
            execution_id,
            base_tip=tip,
            requester=requester,
            ci=ci,
            requirements=requirements,
        )

    def display_path(self, path: Path) -> str:
        """`path` relative to the repository root when it lies inside, for messages."""
        try:
            return str(path.resolve().relative_to(self.repo.workdir.resolve()))
        except ValueError:
            return str(path)
