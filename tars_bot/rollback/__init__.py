"""Rollback Manager: undoing steps and executions, reverts after merge, how a change landed."""
