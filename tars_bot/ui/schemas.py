"""The JSON Schema of every file tars-bot reads and every JSON it prints, from the models (never
written by hand); `tars-bot schema --kind KIND` prints one, docs/schemas/KIND.json holds each."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from tars_bot.models import Execution, ExecutionPlan, Improvement
from tars_bot.models.output import (
    Checked,
    Error,
    Pending,
    PromotionCheck,
    SandboxView,
    Stats,
    Validated,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# kind -> what it describes: the improvement file (read), then each `--format json` output
MODELS: dict[str, Any] = {
    "improvement": Improvement,  # an improvement file, for editors
    "plan": ExecutionPlan,  # plan --format json, --output-file
    "execution": Execution,  # status --format json
    "history": list[Execution],  # history --format json: execution records, newest first
    "stats": Stats,
    "validate": Validated,
    "sandbox": SandboxView,
    "check": Checked,
    "promote": PromotionCheck,  # promote --check --format json
    "pending": Pending,  # pending --format json: parked executions
    "error": Error,  # any command with --format json that ends in an error
}


def schema(kind: str) -> dict[str, Any]:
    # files are read (what is accepted), outputs are written (what is printed)
    mode: JsonSchemaMode = "validation" if kind == "improvement" else "serialization"
    return {"$schema": DIALECT} | TypeAdapter(MODELS[kind]).json_schema(mode=mode)
