"""tars-bot execute vs. a plain shell script doing the same work, on a generated repository.

The plan has N small edits and no validation. The baseline, run alternately in the same process,
is what a careful script does by hand: `git worktree add`, then per step an edit and `git commit`,
then `git worktree remove`. Prints medians and the ratio tars-bot / script (target <= 1.0).

    python benchmarks/execute_overhead.py [--files 20000] [--steps 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from generate import make_repo

SCRIPT = textwrap.dedent("""\
    set -e
    wt="$1"; shift
    git worktree add -q -b "bench/script-$$" "$wt" HEAD
    for n in "$@"; do
      f="$wt/src/pkg$((n % 100))/mod$n.py"
      sed -i "s/return x + $n\\$/return x - $n/" "$f"
      git -C "$wt" commit -q -a -m "step $n"
    done
    git worktree remove --force "$wt"
    git branch -q -D "bench/script-$$"
    """)


def improvement(numbers: list[int], as_commands: bool) -> str:
    """Edits as `edit` actions (done on the commit's tree in memory), or as `run: sed` commands
    (which need a checkout, as the script does)."""
    if as_commands:
        steps = [
            f"  - {{name: step {n}, run: \"sed -i 's/return x + {n}$/return x - {n}/' "
            f'src/pkg{n % 100}/mod{n}.py"}}'
            for n in numbers
        ]
    else:
        steps = [
            f"  - {{name: step {n}, edit: {{path: src/pkg{n % 100}/mod{n}.py, "
            f'search: "return x + {n}", replace: "return x - {n}"}}}}'
            for n in numbers
        ]
    return "title: benchmark\nsteps:\n" + "\n".join(steps) + "\n"


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(tmp: Path, files: int, steps: int, repeat: int) -> dict[str, float]:
    """Median seconds of the script and of tars-bot with the edits as edit and as run steps."""
    numbers = [i * (files // steps) + 7 for i in range(steps)]
    root = make_repo(tmp / "repo", files)
    improvements = root / ".tars" / "improvements"
    improvements.mkdir(parents=True)
    (improvements / "edits.yaml").write_text(improvement(numbers, as_commands=False))
    (improvements / "commands.yaml").write_text(improvement(numbers, as_commands=True))
    script = tmp / "baseline.sh"
    script.write_text(SCRIPT)
    baseline = ["bash", str(script), str(tmp / "wt"), *map(str, numbers)]
    times: dict[str, list[float]] = {"script": [], "edits": [], "commands": []}
    for _ in range(repeat):
        times["script"].append(timed(baseline, root))
        for variant in ("edits", "commands"):
            tars = [sys.executable, "-m", "tars_bot", "execute", "--improvement-id", variant]
            times[variant].append(timed(tars, root))
            subprocess.run(
                ["git", "branch", "-q", "-D", f"tars-bot/{variant}"], cwd=root, check=True
            )
    return {name: statistics.median(values) for name, values in times.items()}


def report(median: dict[str, float]) -> None:
    print(f"  shell script: worktree add, sed, commit -a     {median['script']:8.3f} s")
    for variant, label in (("edits", "edit steps"), ("commands", "run steps (sed)")):
        ratio = median[variant] / median["script"]
        print(
            f"  tars-bot execute, {label:27} {median[variant]:8.3f} s   ratio {ratio:5.2f} (<= 1.0)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        medians = measure(Path(tmp), args.files, args.steps, args.repeat)
    print(f"repository: {args.files} files; plan: {args.steps} edits; repeat {args.repeat}")
    report(medians)


if __name__ == "__main__":
    main()
