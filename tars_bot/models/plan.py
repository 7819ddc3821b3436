"""Execution plans: an improvement checked, ordered and sealed against a base commit."""

from __future__ import annotations

import hashlib
import json
from typing import Final, Literal

from pydantic import (
    Field,
)

from tars_bot.models.base import Model
from tars_bot.models.improvement import Action, Improvement, Limits, Validation


class Base(Model):
    ref: str
    commit: str
    tree: str


class PlannedStep(Model):
    number: int
    name: str
    action: Action
    scope: list[str]
    depends_on: list[int]
    files: list[str] | None = Field(
        description="Paths the step changes; null when only known at run time."
    )
    checks: list[str]
    limits: Limits
    gated: bool = Field(False, description="Parks after this step for a person's approval.")


PLAN_FORMAT: Final = "tars-bot.plan/1"


class ExecutionPlan(Model):
    format: Literal["tars-bot.plan/1"] = PLAN_FORMAT
    improvement: Improvement
    base: Base
    branch: str
    steps: list[PlannedStep]
    validation: Validation
    warnings: list[str]
    digest: str = Field("", description="sha256 of the rest, the seal excepted.")
    seal: str = Field(
        "", description="HMAC-SHA256 of the digest under the plan key where it was planned."
    )

    def compute_digest(self) -> str:
        body = self.model_dump(mode="json", exclude={"digest", "seal"})
        for step in body["steps"]:  # added later: a plan without gates keeps its digest
            if not step["gated"]:
                del step["gated"]
        if body["improvement"]["approval"] is None:
            del body["improvement"]["approval"]
        for step in body["improvement"]["steps"]:
            if not step["approve"]:
                del step["approve"]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def sealed(self) -> ExecutionPlan:
        return self.model_copy(update={"digest": self.compute_digest()})

    @property
    def is_sealed(self) -> bool:
        return self.digest == self.compute_digest()
