"""Property: steps give the same tree whether applied in memory or in a worktree.

Edit, write, delete and patch steps run on the commit's tree in memory until a `run` step needs a
checkout; after it, they run on the worktree. A `run` step that changes nothing, put anywhere,
must not change the result."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tars_bot import ExecutionSystem, Improvement, TarsError
from tests.helpers import commit_files, git

PATHS = ["a.txt", "b.txt", "d/e.txt", "d/f/g.txt"]
RUNS = itertools.count()
actions = st.one_of(
    st.builds(
        lambda p, s, r: {"edit": {"path": p, "search": s, "replace": r}},
        st.sampled_from(PATHS),
        st.sampled_from(["alpha", "beta", "x"]),
        st.sampled_from(["x", "y\n", ""]),
    ),
    st.builds(
        lambda p, c, x: {"write": {"path": p, "content": c, "executable": x}},
        st.sampled_from(PATHS),
        st.sampled_from(["alpha\n", "x\n", "beta y\n"]),
        st.booleans(),
    ),
    st.builds(lambda p: {"delete": [p]}, st.sampled_from(PATHS)),
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("same-tree")
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"a.txt": "alpha\n", "b.txt": "beta x\n", "d/e.txt": "alpha beta\n"})
    return repo


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(actions, min_size=1, max_size=5), where=st.integers(0, 5))
def test_a_checkout_in_the_middle_changes_nothing(repo, steps, where):
    named = [{"name": f"s{i}", **step} for i, step in enumerate(steps)]
    noop = {"name": "checkout", "run": "true", "scope": ["**"]}
    with_run = [*named[:where], noop, *named[where:]]
    system = ExecutionSystem(repo)
    n = next(RUNS)
    trees = []
    for label, plan_steps in (("memory", named), ("worktree", with_run)):
        improvement = Improvement.model_validate(
            {"id": f"{label}-{n}", "title": "t", "steps": plan_steps}
        )
        try:
            plan = system.plan(improvement)
        except TarsError:
            assume(False)  # infeasible plans are the planner's business
        result = system.execute(plan)
        assert result.success, result.failure_reason
        trees.append(git(repo, "ls-tree", "-r", f"tars-bot/{label}-{n}"))  # modes and blobs
    assert trees[0] == trees[1]
