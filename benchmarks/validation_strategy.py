"""Final-check strategies: `bisect` vs `each`, and a cache hit vs a miss.

A 16-step plan runs on a generated repository whose `tests` nox session takes about a second.
Each variant executes on a fresh copy (so nothing is cached between variants), alternating.
Prints total execution times and the ratios (target: bisect <= 0.25 x each on the all-good plan).

    python benchmarks/validation_strategy.py [--steps 16] [--session-seconds 1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tars_bot import ExecutionSystem, Improvement
from tars_bot.git import create_repository

NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "check.py")
"""
CHECK = """\
import pathlib, sys, time
time.sleep({seconds})
sys.exit(any("BAD" in p.read_text() for p in pathlib.Path("data").glob("*.txt")))
"""


def improvement(steps: int, bad: int | None, strategy: str) -> Improvement:
    return Improvement.model_validate(
        {
            "id": "bench",
            "title": "benchmark",
            "validation": {"final": ["tests"], "strategy": strategy},
            "steps": [
                {
                    "name": f"s{n}",
                    "write": {"path": f"data/s{n}.txt", "content": "BAD" if n == bad else "ok"},
                }
                for n in range(1, steps + 1)
            ],
        }
    )


def execute(root: Path, seconds: float, imp: Improvement) -> tuple[float, ExecutionSystem, str]:
    create_repository(
        root, {"noxfile.py": NOXFILE, "check.py": CHECK.format(seconds=seconds)}, "init"
    )
    system = ExecutionSystem(root)
    plan = system.plan(imp)
    start = time.perf_counter()
    result = system.execute(plan)
    return time.perf_counter() - start, system, result.execution_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--session-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    bad_step = args.steps * 2 // 3
    variants = [
        (plan, strategy) for plan in ("all good", "one bad") for strategy in ("each", "bisect")
    ]
    times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    cache = {"miss": [], "hit": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for plan, strategy in variants:
                bad = bad_step if plan == "one bad" else None
                root = Path(tmp) / f"{r}-{plan}-{strategy}".replace(" ", "-")
                seconds, system, execution_id = execute(
                    root, args.session_seconds, improvement(args.steps, bad, strategy)
                )
                times[(plan, strategy)].append(seconds)
                if plan == "all good" and strategy == "bisect":
                    start = time.perf_counter()
                    system.validate(execution_id)
                    cache["hit"].append(time.perf_counter() - start)
                    cache["miss"].append(seconds)
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"{args.steps} steps; tests session ~{args.session_seconds:g}s; bad step {bad_step}")
    for plan in ("all good", "one bad"):
        each, bisect = median[(plan, "each")], median[(plan, "bisect")]
        ratio = bisect / each
        print(
            f"{plan:9} each {each:7.2f} s   bisect {bisect:7.2f} s   ratio bisect/each {ratio:5.2f}"
        )
    hit, miss = statistics.median(cache["hit"]), statistics.median(cache["miss"])
    print(
        f"validate again (cache hit) {hit:6.3f} s vs execute with validation (miss) {miss:6.2f} s"
    )
    print(f"ratio hit/miss {hit / miss:5.3f}   (target for all good: bisect/each <= 0.25)")


if __name__ == "__main__":
    main()
