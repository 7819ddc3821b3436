"""ExecutionSystem: the library API that the CLI and the GitHub integration call."""

from __future__ import annotations

from pathlib import Path

from tars_bot import loader, planner
from tars_bot.config import Config, parse_config
from tars_bot.git import Repo
from tars_bot.models import ExecutionPlan, Improvement


class ExecutionSystem:
    """tars-bot on one repository."""

    def __init__(self, repo_path: Path | str = ".") -> None:
        self.repo = Repo(repo_path)

    def config(self, ref: str = "HEAD") -> Config:
        _, tree = self.repo.resolve(ref)
        return parse_config(self.repo.read(tree, "pyproject.toml"), f"pyproject.toml at {ref}")

    def improvement_file(self, improvement_id: str, ref: str = "HEAD") -> Path:
        """The improvement file for `improvement_id` in the working tree's improvements dir."""
        return loader.find_improvement_file(
            self.repo.workdir / self.config(ref).improvements_dir, improvement_id
        )

    def load_improvement(self, path: Path) -> Improvement:
        return loader.load_improvement(path, display=self.display_path(path))

    def plan(
        self, improvement: Improvement, *, base: str = "HEAD", source: str | None = None
    ) -> ExecutionPlan:
        return planner.plan(self.repo, improvement, base_ref=base, source=source)

    def display_path(self, path: Path) -> str:
        """`path` relative to the repository root when it lies inside, for messages."""
        try:
            return str(path.resolve().relative_to(self.repo.workdir.resolve()))
        except ValueError:
            return str(path)
