"""Property: a unified diff as `diff -u` writes it (made with difflib), planned and executed as a
`patch` step, turns the file into exactly the other text."""

from __future__ import annotations

import difflib
import itertools
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tars_bot import ExecutionSystem, Improvement
from tests.helpers import commit_files, git

LINES = st.lists(
    st.sampled_from(["a\n", "b\n", "c\n", "def f():\n", "    pass\n", "\n", "x = 1\n"]), max_size=30
)
RUNS = itertools.count()


@pytest.fixture(scope="module")
def patch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("patches")
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"README": "patch tests\n"})
    return repo


def unified_diff(old: str, new: str, path: str, context: int) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), path, path, n=context
    )
    # difflib leaves out the marker that `diff -u` and `git diff` write after a last line
    # without a newline
    return "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    before=LINES,
    after=LINES,
    newline_at_end=st.booleans(),
    context=st.integers(0, 3),
)
def test_difflib_patches_apply_exactly(patch_repo, before, after, newline_at_end, context):
    old = "".join(before) + "end\n"
    new = "".join(after) + ("end\n" if newline_at_end else "end")
    assume(old != new)
    n = next(RUNS)
    path = f"f{n}.txt"
    commit_files(patch_repo, {path: old}, f"file {n}")
    system = ExecutionSystem(patch_repo)
    step = {"name": "p", "patch": unified_diff(old, new, path, context)}
    improvement = Improvement.model_validate({"id": f"p{n}", "title": "t", "steps": [step]})
    result = system.execute(system.plan(improvement))
    assert result.success, result.failure_reason
    blob = ["git", "-C", str(patch_repo), "cat-file", "blob", f"tars-bot/p{n}:{path}"]
    assert subprocess.run(blob, capture_output=True, check=True).stdout == new.encode()
