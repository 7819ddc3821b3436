"""Property tests: whatever a file holds, loading and planning fail only with TarsError."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tars_bot import ExecutionSystem, Improvement, TarsError
from tars_bot.loader import KNOWN_KEYS, load_improvement

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
    from tests.conftest import commit_files, git

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
