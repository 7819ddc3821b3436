"""The planner's ordering (planning/planner.py): dependencies first, file order otherwise, steps
touching the same file kept in file order with a warning, and cycles refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tars_bot.errors import PlanError
from tars_bot.git import Repo
from tars_bot.models import ExecutionPlan, Improvement
from tars_bot.planning.planner import plan

FILES = {
    "pyproject.toml": '[tool.tars-bot]\ncomponents = { core = ["src/**"] }\n',
    "src/a.py": "A = 1\n",
    "src/b.py": "B = 1\n",
    "README.md": "# r\n",
}


def write(name: str, path: str, **extra: object) -> dict[str, object]:
    return {"name": name, "write": {"path": path, "content": f"{name}\n"}, **extra}


def planned(repo: Path, *steps: dict[str, object]) -> ExecutionPlan:
    improvement = Improvement.model_validate({"id": "order", "title": "t", "steps": list(steps)})
    return plan(Repo(repo), improvement, source="order.yaml")


def refused(repo: Path, *steps: dict[str, object]) -> list[str]:
    with pytest.raises(PlanError) as caught:
        planned(repo, *steps)
    return caught.value.problems


def order(result: ExecutionPlan) -> list[tuple[int, str, list[int]]]:
    return [(s.number, s.name, s.depends_on) for s in result.steps]


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(FILES)


def test_independent_steps_keep_the_files_order(repo):
    result = planned(repo, write("z", "z.txt"), write("y", "y.txt"), write("x", "x.txt"))
    assert order(result) == [(1, "z", []), (2, "y", []), (3, "x", [])]
    assert result.warnings == []


def test_a_step_runs_after_what_it_depends_on_by_name_or_number(repo):
    result = planned(
        repo,
        write("last", "3.txt", depends_on=["middle"]),
        write("middle", "2.txt", depends_on=[3]),
        write("first", "1.txt"),
    )
    assert order(result) == [(1, "first", []), (2, "middle", [1]), (3, "last", [2])]


def test_a_diamond_takes_the_earliest_step_in_the_file_when_free_to_choose(repo):
    result = planned(
        repo,
        write("d", "d.txt", depends_on=["c", "b"]),
        write("c", "c.txt", depends_on=["a"]),
        write("b", "b.txt", depends_on=["a"]),
        write("a", "a.txt"),
    )
    assert order(result) == [(1, "a", []), (2, "c", [1]), (3, "b", [1]), (4, "d", [2, 3])]


def test_unordered_steps_on_the_same_file_run_in_file_order_with_a_warning(repo):
    result = planned(
        repo, write("one", "src/a.py"), write("other", "x.txt"), write("two", "src/a.py")
    )
    assert order(result) == [(1, "one", []), (2, "other", []), (3, "two", [1])]
    assert result.warnings == [
        'step 1 "one" and step 3 "two" both touch src/a.py; they run in file order'
    ]


def test_a_run_step_whose_scope_covers_a_later_steps_file_is_ordered_before_it(repo):
    run = {"name": "tool", "run": "true", "scope": ["src/**"]}
    result = planned(repo, run, write("after", "src/b.py"), write("apart", "x.txt"))
    assert order(result) == [(1, "tool", []), (2, "after", [1]), (3, "apart", [])]
    assert result.warnings == [
        'step 1 "tool" and step 2 "after" both touch src/b.py; they run in file order'
    ]


def test_steps_already_ordered_on_a_shared_file_get_no_warning(repo):
    result = planned(
        repo, write("later", "src/a.py", depends_on=["sooner"]), write("sooner", "src/a.py")
    )
    assert order(result) == [(1, "sooner", []), (2, "later", [1])]
    assert result.warnings == []


def test_ordering_through_a_third_step_needs_no_warning(repo):
    result = planned(
        repo,
        write("one", "src/a.py"),
        write("bridge", "x.txt", depends_on=["one"]),
        write("two", "src/a.py", depends_on=["bridge"]),
    )
    assert order(result) == [(1, "one", []), (2, "bridge", [1]), (3, "two", [2])]
    assert result.warnings == []


def test_a_two_step_cycle_is_refused_naming_both_steps(repo):
    problems = refused(
        repo, write("a", "a.txt", depends_on=["b"]), write("b", "b.txt", depends_on=["a"])
    )
    assert problems == [
        'order.yaml: steps[1].depends_on: dependency cycle: "a" needs "b" needs "a"'
    ]


def test_a_longer_cycle_is_named_in_full_and_steps_behind_it_are_not(repo):
    problems = refused(
        repo,
        write("free", "f.txt"),
        write("a", "a.txt", depends_on=["c"]),
        write("b", "b.txt", depends_on=["a"]),
        write("c", "c.txt", depends_on=["b"]),
        write("stuck", "s.txt", depends_on=["a"]),
    )
    assert problems == [
        'order.yaml: steps[2].depends_on: dependency cycle: "a" needs "c" needs "b" needs "a"'
    ]


@pytest.mark.parametrize(
    ("depends_on", "problem"),
    [
        (["a"], "order.yaml: steps[1].depends_on[1]: a step cannot depend on itself"),
        (["nobody"], "order.yaml: steps[1].depends_on[1]: no step named 'nobody'"),
        ([3], "order.yaml: steps[1].depends_on[1]: no step number 3 (steps are numbered 1 to 2)"),
    ],
)
def test_a_dependency_that_names_no_other_step_is_refused(repo, depends_on, problem):
    assert refused(repo, write("a", "a.txt", depends_on=depends_on), write("b", "b.txt")) == [
        problem
    ]


def test_every_problem_is_reported_at_once(repo):
    problems = refused(
        repo,
        write("a", "a.txt", depends_on=["nobody"]),
        write("a", "b.txt"),
        write("c", "c.txt", depends_on=[0]),
    )
    assert problems == [
        "order.yaml: steps[2].name: duplicate step name (also steps[1])",
        "order.yaml: steps[1].depends_on[1]: no step named 'nobody'",
        "order.yaml: steps[3].depends_on[1]: no step number 0 (steps are numbered 1 to 3)",
    ]


def test_the_order_is_the_same_each_time(repo):
    steps = [write("one", "src/a.py"), write("two", "src/a.py"), write("three", "src/b.py")]
    first, again = planned(repo, *steps), planned(repo, *steps)
    assert order(first) == order(again)
    assert first.digest == again.digest
