"""Steps for an improvement that has none, written by the configured generator command."""

from __future__ import annotations

import subprocess

from tars_bot import workspace
from tars_bot.config import Config
from tars_bot.errors import PlanError
from tars_bot.git import Repo
from tars_bot.loader import improvement_from_data, parse_text
from tars_bot.models import Improvement


def generate_steps(
    repo: Repo, improvement: Improvement, config: Config, source: str
) -> Improvement:
    """Run the generator; it reads TARS_IMPROVEMENT_FILE and prints steps as YAML or JSON."""
    if config.generator is None:
        raise PlanError(
            f"{source}: steps: the improvement has no steps and no generator is configured "
            "(set `generator` in [tool.tars-bot] or write the steps)"
        )
    with workspace.step_home() as home:
        improvement_file = home / "improvement.json"
        improvement_file.write_text(improvement.model_dump_json(exclude_none=True))
        # the same scrubbed environment as run steps: secrets only when named in pass_env
        extra = {"TARS_IMPROVEMENT_FILE": str(improvement_file)}
        env = workspace.step_environment(config.pass_env, extra, home)
        try:
            proc = subprocess.run(
                config.generator,
                shell=True,
                cwd=repo.workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=config.limits.step_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PlanError(
                f"generator {config.generator!r} ran longer than {config.limits.step_timeout}s"
            ) from None
    if proc.returncode != 0:
        tail = "\n  ".join(proc.stderr.strip().splitlines()[-5:])
        raise PlanError(f"generator {config.generator!r} exited with {proc.returncode}:\n  {tail}")
    output = parse_text(proc.stdout, "generator output", ".yaml")
    steps = output.get("steps") if isinstance(output, dict) else output
    data = {**improvement.model_dump(exclude_none=True), "steps": steps}
    generated = improvement_from_data(data, "generator output", improvement.id)
    if not generated.steps:
        raise PlanError("generator output: steps: the generator printed no steps")
    return generated
