"""A warm check in a sealed nox environment (read-only under a throwaway overlay) vs the same
nox run in a writable shared environment, as checks ran before environments were sealed.

Both run the same session (a real virtualenv, `python -c pass`) on the same commit, alternating,
uncached; the environment is built once before timing.

    python benchmarks/sealed_envs.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import make_repo

from tars_bot import ExecutionSystem
from tars_bot.execution.workspace import Workspace
from tars_bot.validation.validator import Validator

NOXFILE = """\
import nox

@nox.session(venv_backend="venv", venv_params=["--without-pip"])
def tests(session):
    session.run("python", "-c", "pass")
"""


def measure(tmp: Path, repeat: int) -> tuple[float, float]:
    """(median seconds sealed, median seconds writable and shared)."""
    repo = make_repo(tmp / "sealed", 100, {"noxfile.py": NOXFILE})
    system = ExecutionSystem(repo)
    config = system.config()
    base, _ = system.repo.resolve("HEAD")
    sealed, shared = [], []
    with Workspace(system.repo, "bench", base, None) as space:
        validator = Validator(system.repo, config, config.limits, space.checkout, base, fresh=True)
        tree = system.repo.tree_of(base)
        envdir, problem = validator._environment(base, tree, "tests")
        assert problem is None, problem
        for _ in range(repeat):
            start = time.perf_counter()
            [result] = validator.run(base, ["tests"])
            sealed.append(time.perf_counter() - start)
            assert result.passed, result
            start = time.perf_counter()
            run = validator._nox(base, "tests", envdir, sealed=False)
            shared.append(time.perf_counter() - start)
            assert run.process.exit_code == 0, run.process.output
    return statistics.median(sealed), statistics.median(shared)


def report(sealed: float, shared: float) -> None:
    print("10. sealed nox environments (warm check, uncached)")
    print(f"  {'writable shared environment (median)':46} {shared * 1000:10.1f} ms")
    print(
        f"  {'sealed: read-only + overlay (median)':46} {sealed * 1000:10.1f} ms  "
        f"ratio {sealed / shared:6.3f} (target <= 1.2)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tars-bot-bench-") as tmp:
        report(*measure(Path(tmp), args.repeat))


if __name__ == "__main__":
    main()
