"""`[tool.tars-bot.stages]`: what each stage is on GitHub and what promoting to prod requires.

Kept apart from `config.py` so that the stages package (and `tars-bot check`) can read it
without the rest of the configuration."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from tars_bot.models import Model, NonEmpty

Requirement = Literal["approved", "checks_green", "undiverged", "plan_digest", "not_self"]
REQUIREMENTS: tuple[Requirement, ...] = (
    "approved",
    "checks_green",
    "undiverged",
    "plan_digest",
    "not_self",
)
MergeMethod = Literal["merge", "squash", "rebase", "queue-or-merge"]
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    """'24h' as 86400; durations are validated on load, so `duration` has the form."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"{duration!r} is not a duration such as 30m, 24h or 14d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class TestStage(Model):
    """Publishing: the branch and a draft pull request, checked by tars-bot and the repository's
    own CI."""

    __test__ = False  # a model, not a test class for pytest to collect

    environment: NonEmpty = Field(
        "tars-bot-test", description="The GitHub environment whose secret publishes."
    )
    ci: Literal["required", "optional"] = Field(
        "required",
        description="required: the repository's own CI must be green on the head commit "
        "before the execution moves on; optional: it is reported, not waited for.",
    )


class ProdStage(Model):
    """Merging and watching: promoted only when every requirement holds."""

    environment: NonEmpty = Field(
        "tars-bot-prod", description="The GitHub environment whose secret merges."
    )
    require: list[Requirement] = Field(
        default_factory=lambda: list(REQUIREMENTS),
        description="What promoting to prod requires: approved (by someone with write, "
        "maintain or admin), not_self (not by the execution's requester), checks_green (the "
        "repository's CI on the exact head commit), undiverged (the base changed none of the "
        "execution's files since its base commit), plan_digest (the approval names the "
        "journaled plan).",
    )
    merge: MergeMethod = Field(
        "queue-or-merge",
        description="How the pull request lands: a merge commit, a squash, a rebase, or the "
        "merge queue where the base branch requires one (else a merge commit).",
    )
    watch: str = Field(
        "24h",
        description="How long the default branch is watched after the merge (30m, 24h, 2d).",
    )
    auto_revert: bool = Field(
        False, description="Open the revert pull request when the watch finds the merge broke CI."
    )

    @field_validator("require")
    @classmethod
    def _unique(cls, value: list[Requirement]) -> list[Requirement]:
        return list(dict.fromkeys(value))

    @field_validator("watch")
    @classmethod
    def _duration(cls, value: str) -> str:
        seconds(value)
        return value

    @property
    def watch_seconds(self) -> int:
        return seconds(self.watch)

    def requirements(self, tighter: list[Requirement] | None = None) -> list[Requirement]:
        """The repository's requirements, with those an improvement adds: it may only tighten."""
        return list(dict.fromkeys([*self.require, *(tighter or [])]))


class Stages(Model):
    test: TestStage = Field(default_factory=TestStage)
    prod: ProdStage = Field(default_factory=ProdStage)
