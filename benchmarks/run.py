"""tars-bot's speed claims, measured: each scenario against a baseline run in the same process.

Scenarios (variants alternate within each repetition; medians are printed, with ratios):
  1. overhead    10 small edits on a 20,000-file repo: tars-bot execute vs a shell script doing
                 `git worktree add`, an edit and `git commit -a` per step       (target <= 1.0)
  2. isolation   preparing a worktree and committing one `run` step on a 100,000-file repo:
                 tars-bot (first, then pooled executions) vs `git worktree add`  (target <= 0.2)
  3. rollback    full and step rollback on the 100,000-file repo vs a 1,000-file repo (near 1)
  4. validation  final checks with bisect vs each on a 16-step plan; cache hit vs miss
  5. memory      peak RSS of `tars-bot execute` on the 100,000-file repo         (< 200 MB)
  6. sandbox     a trivial `run` step in bubblewrap vs with `sandbox = "off"`: the extra time
                 per step (median over N steps of each)                          (< 30 ms)
  7. search      culprit search weighted by predicted risk vs bisection, on generated
                 histories (prediction.py)                    (<= 0.6, never > bisection + 1)
  8. history     `history --limit 20` with 5,000 executions vs 50                (<= 1.5)
  9. healing     one-step improvements with injected lint/format and test faults, healing on
                 vs `heal = []` (healing.py): lint/format faults healed (>= 0.9), test faults
                 "healed" (0)
 10. sealed envs a warm, uncached check in a sealed nox environment (read-only, writes to a
                 throwaway overlay) vs the same run in a writable shared one (sealed_envs.py)
                                                                                 (<= 1.2)
 11. start-up    `tars-bot --version` and `tars-bot check` of one file vs `python -c pass`
                 (startup.py)                                   (<= 2 and <= 4)

    python benchmarks/run.py            # the full sizes (several minutes)
    python benchmarks/run.py --quick    # smaller sizes, fewer repetitions (under two minutes)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import execute_overhead
import healing
import prediction
import sealed_envs
import startup
import validation_strategy
from generate import make_repo, module_path

from tars_bot import ExecutionSystem, Improvement


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def row(label: str, seconds: float, baseline: float | None = None, target: str = "") -> None:
    ratio = f"ratio {seconds / baseline:6.3f} {target}" if baseline else ""
    print(f"  {label:46} {seconds * 1000:10.1f} ms  {ratio}")


def one_run_step(improvement_id: str) -> Improvement:
    command = f"echo '# touched' >> {module_path(0)}"
    return Improvement.model_validate(
        {"id": improvement_id, "title": "one step", "steps": [{"name": "touch", "run": command}]}
    )


def isolation(tmp: Path, files: int, repeat: int) -> None:
    repo = make_repo(tmp / "isolation", files)
    system = ExecutionSystem(repo)
    worktree_add, first, pooled = [], [], []
    for n in range(repeat + 1):
        target = tmp / f"wt{n}"
        add = ["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(target), "HEAD"]
        worktree_add.append(timed(lambda add=add: subprocess.run(add, check=True)))
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(target)], check=True
        )
        plan = system.plan(one_run_step(f"iso-{n}"))
        (first if n == 0 else pooled).append(timed(lambda plan=plan: system.execute(plan)))
    baseline = median(worktree_add)
    print(f"2. isolation at scale ({files} files)")
    row("git worktree add (median)", baseline)
    row("tars-bot execute, 1 run step, first (fresh)", first[0], baseline)
    row(
        "tars-bot execute, 1 run step, pooled (median)", median(pooled), baseline, "(target <= 0.2)"
    )


def rollback_cost(tmp: Path, sizes: tuple[int, int], repeat: int) -> None:
    results = {}
    for files in sizes:
        repo = make_repo(tmp / f"rollback-{files}", files)
        system = ExecutionSystem(repo)
        full, step = [], []
        for n in range(repeat):
            steps = [
                {
                    "name": f"e{k}",
                    "edit": {"path": module_path(k), "search": f"x + {k}", "replace": "x"},
                }
                for k in range(3)
            ]
            imp = Improvement.model_validate({"id": f"rb-{n}", "title": "t", "steps": steps})
            result = system.execute(system.plan(imp))
            step.append(timed(lambda r=result, s=system: s.rollback(r.execution_id, step=2)))
            full.append(timed(lambda r=result, s=system: s.rollback(r.execution_id)))
        results[files] = (median(step), median(full))
    small, large = sizes
    print(f"3. rollback cost ({large} vs {small} files)")
    for index, label in ((0, "step rollback"), (1, "full rollback")):
        row(f"{label}, {small} files (median)", results[small][index])
        row(
            f"{label}, {large} files (median)",
            results[large][index],
            results[small][index],
            "(near 1)",
        )


def memory(tmp: Path, files: int) -> None:
    repo = make_repo(tmp / "memory", files)
    (repo / ".tars" / "improvements").mkdir(parents=True)
    (repo / ".tars" / "improvements" / "mem.yaml").write_text(
        f"title: t\nsteps: [{{name: touch, run: \"echo '#' >> {module_path(0)}\"}}]\n"
    )
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-m", "tars_bot", "execute", "--improvement-id", "mem"]
    out = subprocess.run(
        [sys.executable, "-c", probe, *command],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    peak_mb = int(out.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    print(f"5. memory ({files} files)")
    print(f"  peak RSS of tars-bot execute (1 run step)      {peak_mb:10.1f} MB  (target < 200 MB)")


def sandbox_overhead(tmp: Path, steps: int, repeat: int) -> None:
    """The same trivial steps executed sandboxed and not; the difference is what the sandbox
    (bubblewrap's namespaces and mounts, the git state guard) costs per step."""
    durations: dict[str, list[float]] = {"required": [], "off": []}
    systems = {}
    for mode in durations:
        config = f'[tool.tars-bot]\nsandbox = "{mode}"\n'
        systems[mode] = ExecutionSystem(
            make_repo(tmp / f"sandbox-{mode}", 100, {"pyproject.toml": config})
        )
    trivial = [{"name": f"s{k}", "run": "true"} for k in range(steps)]
    for n in range(repeat):
        for mode, system in systems.items():
            imp = Improvement.model_validate({"id": f"sb-{n}", "title": "t", "steps": trivial})
            result = system.execute(system.plan(imp))
            durations[mode] += [step.duration_s or 0.0 for step in result.steps]
    sandboxed, plain = median(durations["required"]), median(durations["off"])
    print(f"6. sandbox overhead ({steps} trivial run steps x {repeat})")
    row('run step, sandbox = "off" (median)', plain)
    row("run step, bubblewrap (median)", sandboxed, plain)
    print(f"  {'extra time per step':46} {(sandboxed - plain) * 1000:10.1f} ms  (target < 30 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    args = parser.parse_args()
    big, overhead_files, repeat = (20_000, 5_000, 2) if args.quick else (100_000, 20_000, 5)
    tmp = Path(tempfile.mkdtemp(prefix="tars-bot-bench-"))
    try:
        print(f"1. overhead ({overhead_files} files, 10 edits)")
        (tmp / "overhead").mkdir()
        execute_overhead.report(
            execute_overhead.measure(tmp / "overhead", overhead_files, 10, repeat)
        )
        isolation(tmp, big, repeat)
        rollback_cost(tmp, (1_000, big), repeat)
        session_seconds = 0.3 if args.quick else 1.0
        print(f"4. validation strategy (16 steps, tests session ~{session_seconds:g} s)")
        (tmp / "validation").mkdir()
        validation_strategy.report(
            validation_strategy.measure(tmp / "validation", 16, session_seconds, 1)
        )
        memory(tmp, big)
        sandbox_overhead(tmp, 10, repeat)
        prediction.main(args.quick)
        lint, tests = (10, 4) if args.quick else (40, 10)
        print(f"9. healing ({lint} lint/format faults, {tests} test faults)")
        (tmp / "healing").mkdir()
        healing.report(healing.measure(tmp / "healing", lint, tests))
        sealed_envs.report(*sealed_envs.measure(tmp, 3 if args.quick else 7))
        (tmp / "startup").mkdir()
        startup.report(startup.measure(tmp / "startup", 7 if args.quick else 21))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
