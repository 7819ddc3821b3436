"""Property tests: whatever a file holds, loading and planning fail only with TarsError."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tars_bot import ExecutionSystem, Improvement, TarsError
from tars_bot.planning.loader import KNOWN_KEYS, load_improvement

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
step_like = st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=5)
improvement_like = st.fixed_dictionaries(
    {}, optional={"title": values, "steps": st.lists(step_like, max_size=3), "id": values}
) | st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=6)


def _dump(document: object, suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(document)
    return yaml.safe_dump(document, allow_unicode=True)


@settings(max_examples=300, deadline=None)
@given(
    document=st.one_of(st.text(max_size=200), values, improvement_like),
    suffix=st.sampled_from([".yaml", ".json", ".toml", ".yml"]),
)
def test_loader_raises_only_tars_errors(document: object, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        text = document if isinstance(document, str) else _dump(document, suffix)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            improvement = load_improvement(path)
        except TarsError as e:
            assert e.problems and all(p.startswith(str(path)) for p in e.problems)
        else:
            assert improvement.id == "fuzz" or isinstance(document, dict)


PATHS = st.sampled_from(["a.py", "pkg/b.py", "pkg", "new.txt", "../x", "/abs", ".git/x", "a.py/x"])
TEXTS = st.sampled_from(["x", "x = 1", "\n", "def f", "", "y"])
actions = st.one_of(
    st.builds(
        lambda p, s, r: {"edit": {"path": p, "search": s or "x", "replace": r}}, PATHS, TEXTS, TEXTS
    ),
    st.builds(lambda p, c: {"write": {"path": p, "content": c}}, PATHS, TEXTS),
    st.builds(lambda ps: {"delete": ps}, st.lists(PATHS, min_size=1, max_size=2)),
    st.builds(lambda p: {"patch": f"--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"}, PATHS),
)


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import commit_files, git

    repo = tmp_path_factory.mktemp("props")
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"a.py": "x = 1\ndef f():\n    pass\n", "pkg/b.py": "y\n"})
    return repo


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(actions, min_size=1, max_size=5), deps=st.lists(st.integers(1, 5), max_size=3)
)
def test_planner_raises_only_tars_errors(
    small_repo: Path, steps: list[dict], deps: list[int]
) -> None:
    named = [{"name": f"s{i}", **action} for i, action in enumerate(steps)]
    named[0]["depends_on"] = deps
    improvement = Improvement.model_validate({"id": "p", "title": "t", "steps": named})
    try:
        plan = ExecutionSystem(small_repo).plan(improvement)
    except TarsError as e:
        assert e.problems
    else:
        assert plan.is_sealed and len(plan.steps) == len(steps)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    deps=st.lists(st.lists(st.integers(1, 6), max_size=3), min_size=1, max_size=6),
    files=st.lists(st.sampled_from(["x1.txt", "x2.txt", "x3.txt"]), min_size=6, max_size=6),
)
def test_plans_respect_every_dependency(small_repo: Path, deps: list[list[int]], files: list[str]):
    n = len(deps)
    steps = [
        {
            "name": f"s{i + 1}",
            "write": {"path": files[i], "content": f"{i}\n"},
            "depends_on": [d for d in ds if d <= n and d != i + 1],
        }
        for i, ds in enumerate(deps)
    ]
    improvement = Improvement.model_validate({"id": "o", "title": "t", "steps": steps})
    try:
        plan = ExecutionSystem(small_repo).plan(improvement)
    except TarsError as e:
        assert any("dependency cycle" in p for p in e.problems), e.problems
        return
    position = {step.name: step.number for step in plan.steps}
    for step in steps:
        for dep in step["depends_on"]:
            assert position[f"s{dep}"] < position[step["name"]]
    for planned in plan.steps:
        assert all(d < planned.number for d in planned.depends_on)
    # steps writing the same file are always ordered, through the plan's own dependencies
    after = {planned.number: set(planned.depends_on) for planned in plan.steps}
    for a, b in itertools.combinations(plan.steps, 2):
        if a.files == b.files:
            assert _reaches(after, b.number, a.number), (a.name, b.name)
    if not any(s["depends_on"] for s in steps):
        assert [s.name for s in plan.steps] == [s["name"] for s in steps]


def _reaches(after: dict[int, set[int]], start: int, goal: int) -> bool:
    """Whether step `start` runs after step `goal` by the plan's depends_on, directly or not."""
    todo, seen = [start], set()
    while todo:
        for before in after[todo.pop()]:
            if before == goal:
                return True
            if before not in seen:
                seen.add(before)
                todo.append(before)
    return False
