"""Improvement files: steps and their actions, expected benefits, validation, limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tars_bot.models.base import ImprovementId, Model, NonEmpty

ACTION_KINDS = ("run", "patch", "edit", "write", "delete")


# Actions: what a step does. Improvement files write `edit: {...}`; plans store `{kind: edit, ...}`.
class RunAction(Model):
    kind: Literal["run"] = "run"
    command: NonEmpty


class PatchAction(Model):
    kind: Literal["patch"] = "patch"
    diff: NonEmpty


class EditAction(Model):
    kind: Literal["edit"] = "edit"
    path: NonEmpty
    search: NonEmpty
    replace: str


class WriteAction(Model):
    kind: Literal["write"] = "write"
    path: NonEmpty
    content: str
    executable: bool = False


class DeleteAction(Model):
    kind: Literal["delete"] = "delete"
    paths: list[NonEmpty] = Field(min_length=1)


Action = Annotated[
    RunAction | PatchAction | EditAction | WriteAction | DeleteAction, Field(discriminator="kind")
]


class EditSpec(Model):
    path: NonEmpty
    search: NonEmpty = Field(description="Text that must occur exactly once in the file.")
    replace: str


class WriteSpec(Model):
    path: NonEmpty
    content: str
    executable: bool = False


# which steps park for approval, in increasing strictness: an improvement may only tighten
Approval = Literal["none", "run_steps", "each_step"]
APPROVALS: tuple[Approval, ...] = ("none", "run_steps", "each_step")


class Step(Model):
    """One commit's worth of change. Exactly one of run, patch, edit, write, delete."""

    name: NonEmpty
    run: NonEmpty | None = Field(None, description="Shell command run in the worktree.")
    patch: NonEmpty | None = Field(None, description="Unified diff, as `git apply` accepts it.")
    edit: EditSpec | None = None
    write: WriteSpec | None = None
    delete: list[NonEmpty] | None = Field(None, min_length=1, description="Paths to delete.")
    scope: list[NonEmpty] | None = Field(
        None, description="Globs where the step may write; default: the target components."
    )
    depends_on: list[NonEmpty | int] = Field(
        default_factory=list, description="Step names or 1-based numbers that must run first."
    )
    timeout: int | None = Field(None, gt=0, description="Wall-clock seconds for a run step.")
    approve: bool = Field(
        False, description="Park after this step until a person approves it (a gate)."
    )

    @field_validator("delete", mode="before")
    @classmethod
    def _single_path(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Step:
        given = [kind for kind in ACTION_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            raise PydanticCustomError(
                "one_action",
                "a step needs exactly one action (run, patch, edit, write or delete); "
                "found {found}",
                {"found": found},
            )
        return self

    @property
    def action(self) -> RunAction | PatchAction | EditAction | WriteAction | DeleteAction:
        if self.run is not None:
            return RunAction(command=self.run)
        if self.patch is not None:
            return PatchAction(diff=self.patch)
        if self.edit is not None:
            return EditAction(**self.edit.model_dump())
        if self.write is not None:
            return WriteAction(**self.write.model_dump())
        assert self.delete is not None  # guaranteed by _exactly_one_action
        return DeleteAction(paths=self.delete)


class Benefit(Model):
    """A benefit measured by running `command` before and after the change."""

    name: NonEmpty
    command: NonEmpty
    measure: Literal["wall_time", "peak_memory", "output"] = "wall_time"
    target: Annotated[str, StringConstraints(pattern=r"^[+-]?\d+(\.\d+)?%$")] | None = Field(
        None, description='Relative change to reach, e.g. "-15%".'
    )
    repeat: int = Field(5, ge=1, le=100)
    required: bool = False


def _benefit_kind(value: Any) -> str:
    return "text" if isinstance(value, str) else "measured"


ExpectedBenefit = Annotated[
    Annotated[NonEmpty, Tag("text")] | Annotated[Benefit, Tag("measured")],
    Discriminator(_benefit_kind),
]
UNION_TAGS = frozenset({"text", "measured"})


class Validation(Model):
    per_step: list[NonEmpty] = Field(
        default_factory=list, description="nox sessions (or tag:NAME) run after each step."
    )
    final: list[NonEmpty] = Field(
        default_factory=list, description="nox sessions (or tag:NAME) run on the final tree."
    )
    strategy: Literal["bisect", "each"] = "bisect"
    api: list[NonEmpty] = Field(
        default_factory=list, description="Packages whose public API must stay compatible."
    )


class Limits(Model):
    step_timeout: int = Field(600, gt=0, description="Wall-clock seconds per step.")
    memory_mb: int = Field(4096, gt=0, description="Address-space limit of step processes.")
    max_changed_lines: int = Field(5000, gt=0, description="Changed lines allowed per step.")
    max_changed_bytes: int = Field(
        50_000_000, gt=0, description="Bytes of added or changed files (binary too) per step."
    )
    max_file_mb: float = Field(10, gt=0, description="Largest file a step may leave.")


class LimitsOverride(Model):
    step_timeout: int | None = Field(None, gt=0)
    memory_mb: int | None = Field(None, gt=0)
    max_changed_lines: int | None = Field(None, gt=0)
    max_changed_bytes: int | None = Field(None, gt=0)
    max_file_mb: float | None = Field(None, gt=0)


class Improvement(Model):
    """An improvement file: `.tars/improvements/<id>.yaml`."""

    model_config = ConfigDict(title="tars-bot improvement")

    id: ImprovementId | None = Field(None, description="Defaults to the file name without suffix.")
    title: NonEmpty
    description: str = ""
    target_components: list[NonEmpty] = Field(
        default_factory=list, description="Component names from the config, or path globs."
    )
    expected_benefits: list[ExpectedBenefit] = Field(default_factory=list)
    steps: list[Step] = Field(
        default_factory=list, description="Empty: the configured generator writes them."
    )
    validation: Validation | None = Field(None, description="Default: the repository's config.")
    on_failure: Literal["rollback", "drop-step"] = "rollback"
    approval: Approval | None = Field(
        None,
        description="Which steps park for a person's approval: none, run_steps (each run step) "
        "or each_step. Default: the repository's; an improvement may only ask for more.",
    )
    limits: LimitsOverride = Field(default_factory=lambda: LimitsOverride.model_validate({}))
