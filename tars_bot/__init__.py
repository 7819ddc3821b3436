"""tars-bot: Git-native, safe execution of code improvements."""

from tars_bot.errors import PlanError, TarsError
from tars_bot.models import ExecutionPlan, Improvement, Step
from tars_bot.system import ExecutionSystem
from tars_bot.version import __version__

__all__ = [
    "ExecutionPlan",
    "ExecutionSystem",
    "Improvement",
    "PlanError",
    "Step",
    "TarsError",
    "__version__",
]
