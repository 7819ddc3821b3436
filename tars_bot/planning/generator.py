"""Steps for an improvement that has none, written by the configured generator command."""

from __future__ import annotations

from tars_bot.config import Config
from tars_bot.errors import PlanError
from tars_bot.execution.sandbox import Jail, open_sandbox
from tars_bot.git import Repo
from tars_bot.models import Improvement
from tars_bot.planning.loader import improvement_from_data, parse_text


def generate_steps(
    repo: Repo, improvement: Improvement, config: Config, source: str, tree: str
) -> Improvement:
    """Run the generator on a copy of `tree` (the base: the user's checkout stays hidden); it
    reads TARS_IMPROVEMENT_FILE and prints steps as YAML or JSON."""
    if config.generator is None:
        raise PlanError(
            f"{source}: steps: the improvement has no steps and no generator is configured "
            "(set `generator` in [tool.tars-bot] or write the steps)"
        )
    sandbox = open_sandbox(config, repo)
    limits = config.limits
    with sandbox.scratch() as scratch:
        where = scratch.host / "base"
        repo.export(tree, where)
        jail = Jail(cwd=where, writable=(where,), network=config.allow_network)
        env = {"TARS_IMPROVEMENT_FILE": scratch.put("improvement.json", _json(improvement))}
        # stdout (the steps) to a file, so that what the generator says on stderr stays apart
        command = ["/bin/sh", "-c", 'sh -c "$1" > "$2"', "sh", config.generator]
        command.append(scratch.output("steps.out"))
        proc = sandbox.run(
            command, jail, limits.step_timeout, limits.memory_mb, scratch=scratch, env=env
        )
        printed = (scratch.read("steps.out") or b"").decode(errors="replace")
    if proc.timed_out:
        raise PlanError(f"generator {config.generator!r} ran longer than {limits.step_timeout}s")
    if proc.exit_code != 0:
        said = proc.output.decode(errors="replace").strip().splitlines()[-5:]
        tail = "\n  ".join(said)
        raise PlanError(f"generator {config.generator!r} exited with {proc.exit_code}:\n  {tail}")
    output = parse_text(printed, "generator output", ".yaml")
    steps = output.get("steps") if isinstance(output, dict) else output
    data = {**improvement.model_dump(exclude_none=True), "steps": steps}
    generated = improvement_from_data(data, "generator output", improvement.id)
    if not generated.steps:
        raise PlanError("generator output: steps: the generator printed no steps")
    return generated


def _json(improvement: Improvement) -> str:
    return improvement.model_dump_json(exclude_none=True)
