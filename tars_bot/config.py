"""`[tool.tars-bot]` in the target repository's pyproject.toml, read from the base commit."""

from __future__ import annotations

import tomllib
from typing import Literal

from pydantic import Field, ValidationError

from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Approval, Improvement, Limits, Model, NonEmpty, Validation
from tars_bot.planning.loader import format_location
from tars_bot.stages.config import Stages

QuickCheck = Literal["compile", "ruff"]


class Config(Model):
    improvements_dir: NonEmpty = ".tars/improvements"
    branch_prefix: str = "tars-bot/"
    components: dict[str, list[NonEmpty]] = Field(
        default_factory=dict, description="Component name -> path globs."
    )
    validation: Validation = Field(default_factory=Validation)
    limits: Limits = Field(default_factory=Limits)
    generator: NonEmpty | None = Field(
        None, description="Command that prints the steps of an improvement that has none."
    )
    pass_env: list[NonEmpty] = Field(
        default_factory=list,
        description="Environment variables (or globs) passed to run steps; secrets only by name.",
    )
    allow_network: bool = Field(False, description="Let run steps reach the network.")
    sandbox: Literal["required", "off"] = Field(
        "required",
        description="required: every process an improvement controls runs under bubblewrap, "
        "and nothing runs where it cannot; off: unsandboxed, and every report says so.",
    )
    check_network: bool = Field(
        True, description="Let nox sessions reach the network (to install their dependencies)."
    )
    check_timeout: int = Field(
        3600, gt=0, description="Wall-clock seconds per nox run (a check), venv build included."
    )
    posargs: dict[NonEmpty, list[str]] = Field(
        default_factory=dict,
        description="Arguments per final check (a nox session, or tag:NAME), passed to nox "
        'after `--` (session.posargs), e.g. tests = ["-x", "-q"].',
    )
    deselect: list[NonEmpty] = Field(
        default_factory=list,
        description="pytest node ids no check runs (known-bad tests), passed as --deselect in "
        "PYTEST_ADDOPTS, e.g. tests/test_io.py::test_network.",
    )
    check_max_file_mb: float = Field(
        2048, gt=0, description="Largest file a nox run may write (RLIMIT_FSIZE), in MB."
    )
    sandbox_paths: list[NonEmpty] = Field(
        default_factory=list,
        description="More directories sandboxed processes may read (e.g. a toolchain under "
        "/opt); never one that contains the checkout or HOME. `tars-bot sandbox` shows the view.",
    )
    quick_checks: list[QuickCheck] = Field(
        default_factory=lambda: list[QuickCheck](("compile", "ruff")),
        description="Checks on each step's changed Python files; empty when nox is the authority.",
    )
    heal: list[NonEmpty] = Field(
        default_factory=lambda: ["ruff check --fix", "ruff format"],
        description="Commands that mend a step failing a per-step check, run in order in its "
        "worktree (TARS_FAILURE_FILE describes the failure); `ruff ...` is tars-bot's ruff on "
        "the step's Python files, where the repository configures ruff. [] turns healing off.",
    )
    heal_attempts: int = Field(
        1, ge=0, description="Rounds of healers (each followed by the checks) per failing step."
    )
    early_checks_above: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Run the final checks right after each step whose predicted risk (from "
        "`tars-bot stats` history) is at least this, so a likely culprit fails early.",
    )
    worktree_pool: int = Field(
        2, ge=0, le=32, description="Worktrees kept for reuse, reset between executions."
    )
    watch_workflows: list[NonEmpty] = Field(
        default_factory=list,
        description="CI workflows (names, or file names without .yml) watched on the default "
        "branch: one that fails right where a tars-bot change landed, having passed just "
        "before, is reported on that change's pull request.",
    )
    auto_revert: bool = Field(
        False, description="With watch_workflows: also open that change's revert pull request."
    )
    approval: Approval = Field(
        "none",
        description="Which steps park for a person's approval: none, run_steps or each_step. "
        "An improvement may ask for more, never less.",
    )
    approval_timeout: int = Field(
        14 * 24 * 3600, gt=0, description="Seconds a gate waits before it expires."
    )
    on_expire: Literal["keep", "rollback"] = Field(
        "keep", description="What an expired gate does to its execution."
    )
    on_reject: Literal["step", "rollback"] = Field(
        "rollback", description="What a rejection undoes: the rejected step, or everything."
    )
    approval_require: list[Literal["not_self"]] = Field(
        default_factory=list,
        description="What a step gate requires besides a decision: not_self (the person who "
        "started the execution may not approve it).",
    )
    protected: list[NonEmpty] = Field(
        default_factory=lambda: [".github/workflows/**"],
        description="Globs no step may change.",
    )
    stages: Stages = Field(
        default_factory=Stages,
        description="[tool.tars-bot.stages]: the test stage (publish) and the prod stage "
        "(merge and watch), with what promoting to prod requires.",
    )

    def limits_for(self, improvement: Improvement, step_timeout: int | None = None) -> Limits:
        """The repository's limits, overridden by the improvement's (and a step's timeout)."""
        override = improvement.limits.model_dump(exclude_none=True)
        if step_timeout is not None:
            override["step_timeout"] = step_timeout
        return self.limits.model_copy(update=override)


def config_at(repo: Repo, ref: str = "HEAD") -> Config:
    """The configuration in the pyproject.toml that `ref` holds."""
    _, tree = repo.resolve(ref)
    return parse_config(repo.read(tree, "pyproject.toml"), f"pyproject.toml at {ref}")


def parse_config(pyproject: bytes | None, source: str = "pyproject.toml") -> Config:
    if pyproject is None:
        return Config()
    try:
        document = tomllib.loads(pyproject.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TarsError(f"{source}: cannot parse: {e}") from None
    section = document.get("tool", {}).get("tars-bot", {})
    try:
        return Config.model_validate(section)
    except ValidationError as e:
        raise TarsError(
            *(
                f"{source}: [tool.tars-bot].{format_location(err['loc'])}: {err['msg']}"
                for err in e.errors()
            )
        ) from None
