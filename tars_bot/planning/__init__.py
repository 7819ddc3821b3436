"""Execution Planner: improvement files, step actions and patches, the planner."""
