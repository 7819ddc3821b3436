"""Start-up: `tars-bot --version` and `tars-bot check` of one improvement file, each against
`python -c pass` run in the same process (subprocess timings, medians of alternating runs).

Targets: --version <= 2x `python -c pass`, check <= 4x. What dominates check is importing
pygit2 (to read HEAD) and pydantic with the improvement models (to validate the file).

    python benchmarks/startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOXFILE = 'import nox\n\n@nox.session(venv_backend="none")\ndef lint(session):\n    pass\n'
IMPROVEMENT = """\
title: t
validation: {final: [lint]}
steps:
  - {name: e, edit: {path: src/a.py, search: "VALUE = 1", replace: "VALUE = 2"}}
"""
IMPROVEMENT_PATH = ".tars/improvements/imp.yaml"
# the entry point as the `tars-bot` script runs it, without the script's own lookup
TARS_BOT = "import sys; from tars_bot.cli import main; sys.exit(main(sys.argv[1:]))"


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "noxfile.py").write_text(NOXFILE)
    (repo / "pyproject.toml").write_text("[tool.tars-bot]\n")
    (repo / "src" / "a.py").write_text("VALUE = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "initial"], check=True)
    improvement = repo / IMPROVEMENT_PATH
    improvement.parent.mkdir(parents=True)
    improvement.write_text(IMPROVEMENT)
    return repo


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(tmp: Path, repeat: int) -> dict[str, float]:
    """Median seconds of each command, run in turn `repeat` times (after one warm-up round)."""
    repo = make_repo(tmp)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "tars-bot --version": [sys.executable, "-c", TARS_BOT, "--version"],
        "tars-bot check FILE": [sys.executable, "-c", TARS_BOT, "check", IMPROVEMENT_PATH],
    }
    durations: dict[str, list[float]] = {name: [] for name in commands}
    for n in range(repeat + 1):
        for name, command in commands.items():
            seconds = timed(command, repo)
            if n:
                durations[name].append(seconds)
    return {name: statistics.median(values) for name, values in durations.items()}


def report(medians: dict[str, float]) -> None:
    baseline = medians["python -c pass"]
    print("11. start-up (medians; ratio to `python -c pass`)")
    targets = {"tars-bot --version": "(target <= 2)", "tars-bot check FILE": "(target <= 4)"}
    for name, seconds in medians.items():
        ratio = f"ratio {seconds / baseline:6.2f} {targets.get(name, '')}"
        print(f"  {name:46} {seconds * 1000:10.1f} ms  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="runs of each (default 21)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tars-bot-startup-"))
    try:
        report(measure(tmp, args.repeat))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
