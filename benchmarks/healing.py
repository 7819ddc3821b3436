"""Self-healing: how many injected lint/format faults healing mends, and how many test faults it
wrongly lets through.

A generated package (ruff configured, a tiny `tests` nox session) gets one improvement per fault,
each a single step, executed through the library API twice: with the default healers and with
`heal = []` (the baseline), alternating. Lint/format faults, five kinds: unsorted imports, bad
spacing, an unused import, trailing whitespace, a call too long for the line. Test faults: a
function made to return a wrong value (every other one badly spaced too, so that `ruff format`
has something to change), caught by the per-step `tests` session.

Prints the share of lint/format faults healed (target >= 0.9), the share of test faults
"healed" (target 0), and the time per execution with healing vs without.

    python benchmarks/healing.py [--lint 40] [--tests 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tars_bot import ExecutionSystem, Improvement
from tars_bot.git import create_repository

PYPROJECT = """\
[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F", "I", "W"]
"""
NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "check.py")
"""
FUNCTIONS = 10  # in src/pkg/calc.py, each checked by check.py
CHECK = f"""\
import sys
sys.path.insert(0, "src")
from pkg import calc
sys.exit(any(getattr(calc, f"add{{n}}")(1) != 1 + n for n in range({FUNCTIONS})))
"""
CALC = "\n\n\n".join(f"def add{n}(x):\n    return x + {n}\n" for n in range(FUNCTIONS))


def _unsorted_imports(n: int) -> str:
    return f"import sys\nimport os\n\nVALUE{n} = (os.sep, sys.argv)\n"


def _bad_spacing(n: int) -> str:
    return f"def twice{n}( x ):\n    return x*{n}\n"


def _unused_import(n: int) -> str:
    return f"import json\nimport os\n\nVALUE{n} = os.sep * {n}\n"


def _trailing_whitespace(n: int) -> str:
    return f"VALUE{n} = {n}   \nOTHER{n} = {n}\n"


def _long_call(n: int) -> str:
    keywords = ", ".join(f"{name}={n}" for name in ("alpha", "beta", "gamma", "delta", "epsilon"))
    return f"RESULT{n} = dict({keywords}, zeta={n}, eta={n}, theta={n}, iota={n}, kappa={n})\n"


LINT_FAULTS: list[Callable[[int], str]] = [
    _unsorted_imports,
    _bad_spacing,
    _unused_import,
    _trailing_whitespace,
    _long_call,
]


def lint_fault(n: int) -> tuple[str, dict]:
    kind = LINT_FAULTS[n % len(LINT_FAULTS)]
    step = {"name": kind.__name__[1:], "write": {"path": f"src/pkg/m{n}.py", "content": kind(n)}}
    return kind.__name__[1:], step


def test_fault(n: int) -> dict:
    k = n % FUNCTIONS
    wrong = f"return {k}  -  x" if n % 2 else f"return {k} - x"
    edit = {"path": "src/pkg/calc.py", "search": f"return x + {k}\n", "replace": wrong + "\n"}
    return {"name": f"wrong value {n}", "edit": edit}


def improvement(name: str, step: dict, per_step: list[str]) -> Improvement:
    return Improvement.model_validate(
        {
            "id": name,
            "title": name,
            "target_components": ["src/**"],
            "validation": {"per_step": per_step},
            "steps": [step],
        }
    )


def repository(root: Path, heal: bool) -> ExecutionSystem:
    config = "" if heal else "\n[tool.tars-bot]\nheal = []\n"
    files = {
        "pyproject.toml": PYPROJECT + config,
        "noxfile.py": NOXFILE,
        "check.py": CHECK,
        "src/pkg/__init__.py": "",
        "src/pkg/calc.py": CALC,
    }
    create_repository(root, files, "init")
    return ExecutionSystem(root)


def measure(tmp: Path, lint: int, tests: int) -> dict:
    """Per variant (healing on, off) and kind of fault: each execution's outcome (healed,
    failed, or passed: the fault went unnoticed) and its seconds."""
    systems = {heal: repository(tmp / f"heal-{heal}", heal) for heal in (True, False)}
    outcomes: dict[tuple[bool, str], list[str]] = {}
    seconds: dict[tuple[bool, str], list[float]] = {}
    corpus = [(f"lint-{n}", *lint_fault(n), []) for n in range(lint)]
    corpus += [(f"test-{n}", "wrong value", test_fault(n), ["tests"]) for n in range(tests)]
    for name, kind, step, per_step in corpus:
        for heal, system in systems.items():
            plan = system.plan(improvement(name, step, per_step))
            start = time.perf_counter()
            result = system.execute(plan)
            seconds.setdefault((heal, kind), []).append(time.perf_counter() - start)
            outcome = "failed" if not result.success else "passed"
            if result.success and result.steps[0].heal is not None:
                outcome = "healed"
            outcomes.setdefault((heal, kind), []).append(outcome)
    return {"outcomes": outcomes, "seconds": seconds}


def _share(
    outcomes: dict[tuple[bool, str], list[str]], heal: bool, kinds: list[str], outcome: str
) -> float:
    found = [o for kind in kinds for o in outcomes.get((heal, kind), [])]
    return found.count(outcome) / len(found) if found else 0.0


def report(result: dict) -> None:
    outcomes, seconds = result["outcomes"], result["seconds"]
    lint_kinds = [kind.__name__[1:] for kind in LINT_FAULTS]
    for kind in [*lint_kinds, "wrong value"]:
        got = outcomes.get((True, kind), [])
        counts = ", ".join(f"{o} {got.count(o)}" for o in ("healed", "failed", "passed"))
        print(f"  {kind:22} {len(got):3} faults: {counts}")
    healed = _share(outcomes, True, lint_kinds, "healed")
    baseline = _share(outcomes, False, lint_kinds, "healed")
    wrong = _share(outcomes, True, ["wrong value"], "healed")
    off = f"heal = []: {baseline:.2f}"
    print(f"  lint/format faults healed   {healed:6.2f}  ({off}; target >= 0.9)")
    print(f"  test faults 'healed'        {wrong:6.2f}  (target 0)")
    for label, kinds in (("lint/format fault", lint_kinds), ("test fault", ["wrong value"])):
        on, off = (
            statistics.median(s for k in kinds for s in seconds.get((heal, k), []))
            for heal in (True, False)
        )
        print(
            f"  {label + ', healing on vs off (median)':46} {on * 1000:8.0f} ms  "
            f"{off * 1000:8.0f} ms  ratio {on / off:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lint", type=int, default=40, help="lint/format faults")
    parser.add_argument("--tests", type=int, default=10, help="test faults")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), args.lint, args.tests)
    print(f"healing ({args.lint} lint/format faults, {args.tests} test faults)")
    report(result)


if __name__ == "__main__":
    main()
