"""Learning, measured (scenarios 7 and 8 of run.py):

7. culprit search  generated histories where failures concentrate on a few paths; plans of 16
                   steps whose bad step is drawn from that history; nox runs the search needs
                   with the predicted weights vs plain bisection (same trials, same process)
                   (target: mean <= 0.6 of bisection's, never more than bisection + 1)
8. history         `history --limit 20` (the library call) on a repository with 5,000
                   executions vs one with 50                                  (target <= 1.5)

    python benchmarks/prediction.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tars_bot import ExecutionSystem
from tars_bot.git import NewContent, Repo
from tars_bot.models import (
    Base,
    Execution,
    ExecutionPlan,
    Improvement,
    Limits,
    PlannedStep,
    StepResult,
    Validation,
    WriteAction,
)
from tars_bot.records import learning, outcomes
from tars_bot.validation import search

DIRS = [f"src/mod{d}/" for d in range(8)]
PATHS = [f"{d}file{f}.py" for d in DIRS for f in range(5)]


def _step(number: int, path: str) -> PlannedStep:
    return PlannedStep(
        number=number,
        name=f"s{number}",
        action=WriteAction(path=path, content="x"),
        scope=[path],
        depends_on=[],
        files=[path],
        checks=[],
        limits=Limits(),
    )


def _plan(paths: list[str]) -> ExecutionPlan:
    return ExecutionPlan(
        improvement=Improvement(id="generated", title="generated"),
        base=Base(ref="HEAD", commit="0" * 40, tree="0" * 40),
        branch="tars-bot/generated",
        steps=[_step(n, path) for n, path in enumerate(paths, 1)],
        validation=Validation(final=["tests"]),
        warnings=[],
    )


def _history(rng: random.Random, failure: dict[str, float], steps: int) -> learning.Totals:
    """Totals as `learning.contribution` counts them, for `steps` past steps on random paths."""
    totals: learning.Totals = {}
    for _ in range(steps):
        path = rng.choice(PATHS)
        bad = rng.random() < failure[path]
        change: learning.Totals = {}
        for key in learning.features(_step(1, path), [path], 1, f"imp{rng.randrange(30)}"):
            node = change.setdefault("steps", {})
            for part in key:
                node = node.setdefault(part, {})
            node["n"] = 1
            if bad:
                node["bad"] = 1
        totals = learning.merge(totals, change)
    return totals


def culprit_search(trials: int, seed: int = 7) -> tuple[float, float, int]:
    rng = random.Random(seed)
    hot = set(rng.sample(PATHS, 4))
    failure = {p: (0.8 if p in hot else 0.01) for p in PATHS}  # 4 of 40 paths break often
    plain_runs, weighted_runs, worst = [], [], 0
    for _ in range(trials):
        totals = _history(rng, failure, 400)
        while True:  # a plan whose tip fails: its first bad step is the culprit
            paths = [rng.choice(PATHS) for _ in range(16)]
            bad = [rng.random() < failure[p] for p in paths]
            if any(bad):
                break
        culprit = bad.index(True)
        plan = _plan(paths)
        risks = learning.risks(plan, totals)
        weights = learning.culprit_weights(risks) if risks else None
        counts = [_runs(culprit, None), _runs(culprit, weights)]
        plain_runs.append(counts[0])
        weighted_runs.append(counts[1])
        worst = max(worst, counts[1] - counts[0])
    return statistics.mean(plain_runs), statistics.mean(weighted_runs), worst


def _runs(culprit: int, weights: list[float] | None) -> int:
    """The nox runs the search takes to find `culprit` among 16 steps."""
    probed = []

    def fails(index: int) -> bool:
        probed.append(index)
        return index >= culprit

    assert search.first_failing(16, fails, weights) == culprit
    return len(probed)


def _journals(repo: Repo, count: int) -> None:
    """`count` executions' journals, as `fetch_journal` brings them from elsewhere."""
    plan = _plan(["src/a.py"]).model_dump_json().encode()
    for n in range(count):
        day, rest = divmod(n, 100)
        execution_id = f"2026{1 + day // 28:02d}{1 + day % 28:02d}-{rest:06d}-000-{n % 65536:04x}"
        execution = Execution(
            id=execution_id,
            improvement=f"imp{n % 30}",
            state="succeeded" if n % 5 else "rolled_back",
            branch=f"tars-bot/imp{n % 30}",
            base_commit="0" * 40,
            started_at="2026-11-20T10:00:00+00:00",
            steps=[StepResult(number=1, name="s1", state="applied", changed_files=["src/a.py"])],
        )
        tree = repo.build_tree(
            None,
            {
                "execution.json": NewContent(execution.model_dump_json(indent=2).encode()),
                "plan.json": NewContent(plan),
            },
        )
        commit = repo.create_commit(tree, [], f"succeeded: {execution_id}")
        repo.update_ref(f"refs/tars-bot/executions/{execution_id}", commit, None)


def history_cost(tmp: Path, sizes: tuple[int, int], repeat: int) -> tuple[float, float]:
    medians = []
    for size in sizes:
        path = tmp / f"history-{size}"
        _init(path)
        repo = Repo(path)
        _journals(repo, size)
        outcomes.rebuild(repo, _heads(repo))
        system = ExecutionSystem(path)
        assert len(system.history(20)) == 20
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            system.history(20)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return medians[0], medians[1]


def _init(path: Path) -> None:
    identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "bench"), ("EMAIL", "bench@example.com"))}  # fmt: skip
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(
        ["git", "-C", str(path), "commit", "-q", "--allow-empty", "-m", "initial"],
        check=True,
        env={**os.environ, **identity},
    )


def _heads(repo: Repo) -> dict[str, str]:
    prefix = "refs/tars-bot/executions/"
    return {name.removeprefix(prefix): target for name, target in repo.refs(prefix).items()}


def main(quick: bool) -> dict[str, float]:
    trials = 60 if quick else 200
    plain, weighted, worst = culprit_search(trials)
    print(f"7. culprit search with prediction (16 steps, {trials} trials)")
    print(f"  {'bisection: mean nox runs':46} {plain:10.2f}")
    print(
        f"  {'weighted by predicted risk: mean nox runs':46} {weighted:10.2f}  "
        f"ratio {weighted / plain:6.3f} (target <= 0.6)"
    )
    print(f"  {'worst trial: runs beyond bisection':46} {worst:10d}  (target <= 1)")
    with tempfile.TemporaryDirectory() as tmp:
        small, large = history_cost(Path(tmp), (50, 1000 if quick else 5000), 15 if quick else 30)
    print(f"8. history --limit 20 ({1000 if quick else 5000} vs 50 executions)")
    print(f"  {'50 executions (median)':46} {small * 1000:10.1f} ms")
    print(
        f"  {'many executions (median)':46} {large * 1000:10.1f} ms  "
        f"ratio {large / small:6.3f} (target <= 1.5)"
    )
    return {"search_ratio": weighted / plain, "worst": worst, "history_ratio": large / small}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
