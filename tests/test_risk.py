"""A step's risk of breaking a check (records/learning.py): naive Bayes over the step's kind,
size, improvement and the most specific path with history, each factor explained."""

from __future__ import annotations

import math

import pytest

from tars_bot.git import Repo
from tars_bot.models import ExecutionPlan, Improvement
from tars_bot.planning.planner import plan
from tars_bot.records import learning
from tars_bot.records.learning import Risk, culprit_weights, planned_lines, prefixes, risks

PATCH = """\
--- a/src/pkg/b.py
+++ b/src/pkg/b.py
@@ -1,2 +1,2 @@
-B = 1
+B = 2
 C = 3
"""


@pytest.fixture
def steps_plan(make_repo) -> ExecutionPlan:
    repo = make_repo({"src/pkg/b.py": "B = 1\nC = 3\n", "README.md": "# r\n"})
    improvement = Improvement.model_validate(
        {
            "id": "risky",
            "title": "t",
            "steps": [
                {"name": "write", "write": {"path": "src/pkg/a.py", "content": "A = 1\n"}},
                {"name": "tool", "run": "true", "scope": ["docs/**"]},
                {"name": "patch", "patch": PATCH},
            ],
        }
    )
    return plan(Repo(repo), improvement)


def history(**features: dict[str, dict[str, int]]) -> dict:
    """Totals whose steps are `features` (kind, path, ...) over 8 steps of which none broke."""
    return {"steps": {"all": {"n": 8}, **features}}


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_without_history_there_is_no_risk(steps_plan):
    assert risks(steps_plan, {}) is None
    assert risks(steps_plan, {"steps": {"all": {"n": 0}}}) is None


def test_a_step_without_history_of_its_own_gets_the_overall_rate(steps_plan):
    write, tool, patch = risks(steps_plan, history())
    assert [r.step for r in (write, tool, patch)] == [1, 2, 3]
    assert write.base == pytest.approx(1 / 10)  # (0 broke + 1) / (8 steps + 2)
    assert write.probability == write.base and write.factors == ()
    assert write.explain() == "10%: no history for this step's features; the overall rate"


def test_a_kind_that_always_broke_moves_the_odds_by_its_smoothed_rate(steps_plan):
    write, tool, _ = risks(steps_plan, history(kind={"write": {"n": 4, "bad": 4}}))
    rate = (4 + learning.SMOOTHING * 0.1) / (4 + learning.SMOOTHING)  # 0.7
    [factor] = write.factors
    assert (factor.feature, factor.steps, factor.bad) == ("kind write", 4, 4)
    assert factor.ratio == pytest.approx(math.exp(logit(rate) - logit(0.1)))
    assert write.probability == pytest.approx(rate, abs=1e-4)
    assert write.explain() == "70% (overall 10%): kind write: 4 of 4 broke a check (x21.00)"
    assert tool.factors == () and tool.probability == tool.base


def test_a_feature_with_too_little_history_does_not_count(steps_plan):
    few = learning.SUPPORT - 1
    [write, *_] = risks(steps_plan, history(kind={"write": {"n": few, "bad": few}}))
    assert write.factors == ()


def test_more_failures_mean_more_risk(steps_plan):
    def chance(bad: int) -> float:
        return risks(steps_plan, history(kind={"write": {"n": 6, "bad": bad}}))[0].probability

    chances = [chance(bad) for bad in range(7)]
    assert chances == sorted(chances) and len(set(chances)) == 7
    assert chances[0] < 0.1 < chances[-1]


def test_the_most_specific_path_with_history_stands_for_the_step(steps_plan):
    paths = {
        "src/": {"n": 8, "bad": 0},
        "src/pkg/": {"n": 3, "bad": 3},
        "src/pkg/a.py": {"n": 2, "bad": 2},  # too little history to count
    }
    write, tool, patch = risks(steps_plan, history(path=paths))
    assert [f.feature for f in write.factors] == ["path src/pkg/"]
    assert [f.feature for f in patch.factors] == ["path src/pkg/"]
    assert write.probability > write.base
    assert tool.factors == ()  # its scope, docs/**, has no history


def test_factors_add_up_in_feature_order(steps_plan):
    totals = history(
        improvement={"risky": {"n": 4, "bad": 0}},
        lines={"<10": {"n": 5, "bad": 5}},
        kind={"patch": {"n": 3, "bad": 3}},
    )
    _, tool, patch = risks(steps_plan, totals)
    assert [f.feature for f in patch.factors] == ["improvement risky", "lines <10", "kind patch"]
    moved = logit(0.1) + sum(math.log(f.ratio) for f in patch.factors)
    assert patch.probability == pytest.approx(1 / (1 + math.exp(-moved)), abs=1e-4)
    assert [f.feature for f in tool.factors] == ["improvement risky"]  # a run's size is unknown
    assert tool.probability < tool.base
    assert patch.explain().startswith(f"{patch.probability:.0%} (overall 10%): improvement risky")


def test_the_same_history_gives_the_same_risks(steps_plan):
    totals = history(kind={"write": {"n": 4, "bad": 1}}, path={"src/": {"n": 5, "bad": 2}})
    assert risks(steps_plan, totals) == risks(steps_plan, totals)


def test_planned_lines_count_what_the_action_says(steps_plan):
    write, tool, patch = steps_plan.steps
    assert planned_lines(write) == 2  # "A = 1\n": one line and the end
    assert planned_lines(tool) is None  # a command's size is not known before it runs
    assert planned_lines(patch) == 2  # one line removed, one added; headers do not count


def test_prefixes_are_every_directory_and_the_file():
    assert prefixes(["src/pkg/a.py"]) == {"src/", "src/pkg/", "src/pkg/a.py"}
    assert prefixes(["src/**/*.py", "docs/"]) == {"src/", "docs/"}
    assert prefixes(["README.md"]) == {"README.md"}
    assert prefixes([]) == set()


def test_culprit_weights_are_the_chance_each_step_is_the_first_to_break():
    weights = culprit_weights([Risk(2, 0.5, 0.1, ()), Risk(1, 0.5, 0.1, ()), Risk(3, 1.0, 0.1, ())])
    assert weights == pytest.approx([0.5, 0.25, 0.25])
    assert culprit_weights([Risk(1, 1.0, 0.1, ()), Risk(2, 0.9, 0.1, ())]) == [1.0, 0.0]
    assert culprit_weights([Risk(1, 0.0, 0.0, ()), Risk(2, 0.0, 0.0, ())]) == [0.0, 0.0]


def test_totals_merge_and_unmerge_exactly():
    one = {"steps": {"all": {"n": 2, "bad": 1}, "kind": {"write": {"n": 2, "bad": 1}}}}
    two = {"steps": {"all": {"n": 1}}, "cache": {"hits": 3}}
    both = learning.merge(learning.merge({}, one), two)
    assert both == learning.merge(learning.merge({}, two), one)
    assert both["steps"]["all"] == {"n": 3, "bad": 1}
    assert learning.merge(both, one, -1) == two
    assert learning.merge(learning.merge(both, one, -1), two, -1) == {}
