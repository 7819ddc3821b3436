"""How long `tars-bot plan` takes on a 1,000-file repository with a 20-step improvement.

Prints the median of tars-bot's own planning work, and, as the baseline measured in the same run,
the time of `git rev-parse HEAD` (one process start plus one repository open: the least any git
tool pays). No thresholds: read the figures.

    python benchmarks/plan_speed.py [--files 1000] [--steps 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tars_bot import ExecutionSystem
from tars_bot.git import create_repository
from tars_bot.models import Improvement


def build_repo(root: Path, n_files: int) -> None:
    files = {
        f"src/pkg{i % 25}/mod{i}.py": f'"""Module {i}."""\n\n\ndef f{i}(x):\n    return x + {i}\n'
        for i in range(n_files)
    }
    create_repository(root, files, "generated")


def improvement(n_files: int, n_steps: int) -> Improvement:
    steps = []
    for i in range(n_steps):
        number = i * (n_files // n_steps)
        module = f"src/pkg{number % 25}/mod{number}.py"
        kind = i % 4
        if kind == 0:
            step = {"edit": {"path": module, "search": f"x + {number}", "replace": f"x - {number}"}}
        elif kind == 1:
            step = {"write": {"path": f"src/new/gen{i}.py", "content": f"VALUE = {i}\n"}}
        elif kind == 2:
            diff = (
                f"--- a/{module}\n+++ b/{module}\n@@ -1,3 +1,3 @@\n"
                f'-"""Module {number}."""\n+"""Module {number}, patched."""\n \n \n'
            )
            step = {"patch": diff}
        else:
            step = {"delete": [module]}
        steps.append({"name": f"step {i}", **step})
    return Improvement.model_validate({"id": "bench", "title": "benchmark", "steps": steps})


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_repo(root, args.files)
        imp = improvement(args.files, args.steps)

        def plan() -> None:
            plan = ExecutionSystem(root).plan(imp)
            assert len(plan.steps) == args.steps and plan.is_sealed

        def baseline() -> None:
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True
            )

        plan()  # warm the OS cache for both
        ours = median_seconds(plan, args.repeat)
        git = median_seconds(baseline, args.repeat)
        cli_start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tars_bot", "schema"], check=True, capture_output=True
        )
        startup = time.perf_counter() - cli_start
    print(f"repository: {args.files} files; improvement: {args.steps} steps; repeat {args.repeat}")
    print(f"plan (library, median):      {ours * 1000:8.1f} ms")
    print(f"git rev-parse HEAD (median): {git * 1000:8.1f} ms")
    print(f"ratio plan / git rev-parse:  {ours / git:8.2f}")
    print(f"tars-bot process start-up:   {startup * 1000:8.1f} ms (once)")


if __name__ == "__main__":
    main()
