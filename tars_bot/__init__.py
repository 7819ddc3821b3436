"""tars-bot: Git-native, safe execution of code improvements."""

from tars_bot.errors import PlanError, TarsError
from tars_bot.models import ExecutionPlan, Improvement, Step
from tars_bot.system import ExecutionSystem

__version__ = "0.1.0"
__all__ = ["ExecutionPlan", "ExecutionSystem", "Improvement", "PlanError", "Step", "TarsError"]
