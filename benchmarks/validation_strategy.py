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


def measure(tmp: Path, steps: int, session_seconds: float, repeat: int) -> dict:
    """Median seconds per (plan, strategy), and of a validation that hits the cache."""
    bad_step = steps * 2 // 3
    variants = [
        (plan, strategy) for plan in ("all good", "one bad") for strategy in ("each", "bisect")
    ]
    times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    hits, misses = [], []
    for r in range(repeat):
        for plan, strategy in variants:
            bad = bad_step if plan == "one bad" else None
            root = tmp / f"{r}-{plan}-{strategy}".replace(" ", "-")
            seconds, system, execution_id = execute(
                root, session_seconds, improvement(steps, bad, strategy)
            )
            times[(plan, strategy)].append(seconds)
            if plan == "all good" and strategy == "bisect":
                start = time.perf_counter()
                system.validate(execution_id)
                hits.append(time.perf_counter() - start)
                misses.append(seconds)
    medians = {key: statistics.median(values) for key, values in times.items()}
    return {"times": medians, "hit": statistics.median(hits), "miss": statistics.median(misses)}


def report(result: dict) -> None:
    for plan in ("all good", "one bad"):
        each, bisect = result["times"][(plan, "each")], result["times"][(plan, "bisect")]
        ratio = bisect / each
        target = "(target <= 0.25)" if plan == "all good" else ""
        print(f"  {plan:9} each {each:7.2f} s  bisect {bisect:7.2f} s  ratio {ratio:5.2f} {target}")
    hit, miss = result["hit"], result["miss"]
    print(
        f"  validate again: cache hit {hit:6.3f} s vs miss {miss:6.2f} s   ratio {hit / miss:6.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--session-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), args.steps, args.session_seconds, args.repeat)
    print(f"{args.steps} steps; tests session ~{args.session_seconds:g}s")
    report(result)


if __name__ == "__main__":
    main()
