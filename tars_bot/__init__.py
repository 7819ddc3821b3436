"""tars-bot: Git-native, safe execution of code improvements."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tars_bot.version import __version__

if TYPE_CHECKING:
    from tars_bot.errors import PlanError, TarsError
    from tars_bot.models import ExecutionPlan, Improvement, Step
    from tars_bot.system import ExecutionSystem

# exported names and their modules, imported on first use: `tars-bot --version` and `check`
# must not pay for pydantic, pygit2 and PyGithub
_LAZY = {
    "ExecutionPlan": "tars_bot.models",
    "ExecutionSystem": "tars_bot.system",
    "Improvement": "tars_bot.models",
    "PlanError": "tars_bot.errors",
    "Step": "tars_bot.models",
    "TarsError": "tars_bot.errors",
}

__all__ = [
    "ExecutionPlan",
    "ExecutionSystem",
    "Improvement",
    "PlanError",
    "Step",
    "TarsError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tars_bot' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
