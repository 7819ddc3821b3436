"""Learning from executions: the outcome index (equal to a rebuild from the journals, whatever
happened), `tars-bot stats`, risk predictions, and the weighted culprit search."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tars_bot import ExecutionSystem
from tars_bot.records import learning
from tars_bot.records.learning import Risk, culprit_weights
from tars_bot.validation import search
from tests.helpers import COUNTING_NOXFILE, DATA_CHECK, add_improvement, commit_files, git, run_tars

GOOD = (
    "title: good\nsteps:\n"
    "  - {name: a, write: {path: data/a.txt, content: ok}}\n"
    "  - {name: b, write: {path: data/b.txt, content: ok}}\n"
)
BAD = (
    "title: bad\nvalidation: {final: [tests]}\nsteps:\n"
    "  - {name: fine, write: {path: data/f.txt, content: ok}}\n"
    "  - {name: breaks, write: {path: data/hot.txt, content: BAD}}\n"
)


def validated_repo(make_repo, tmp_path: Path) -> Path:
    return make_repo(
        {
            "noxfile.py": COUNTING_NOXFILE.format(counter=str(tmp_path / "runs.txt")),
            "pyproject.toml": '[tool.tars-bot]\nsandbox = "off"\n',
            "check.py": DATA_CHECK,
            "data/base.txt": "fine\n",
        }
    )


def index_tree(repo: Path) -> str:
    return git(repo, "rev-parse", "refs/tars-bot/stats^{tree}")


def stats(cli, repo: Path, *args: str) -> dict:
    result = cli("stats", "--repo", repo, "--format", "json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_the_index_equals_a_rebuild_after_executions_rollbacks_and_a_crash(
    cli, make_repo, tmp_path
):
    repo = validated_repo(make_repo, tmp_path)
    add_improvement(repo, GOOD, "good.yaml")
    add_improvement(repo, BAD, "bad.yaml")
    assert cli("execute", "--repo", repo, "--improvement-id", "good").code == 0
    assert cli("execute", "--repo", repo, "--improvement-id", "bad").code == 1
    good = json.loads(cli("history", "--repo", repo, "--format", "json").out)[1]["id"]
    assert cli("rollback", "--repo", repo, "--execution-id", good, "--step", "2").code == 0
    # executing `good` again supersedes the first: killed right after that one's journal moved
    # (a rollback pending), before the index followed
    crashed = run_tars(repo, "execute", "--improvement-id", "good", fault="after-journal-update")
    assert crashed.returncode == -9
    assert cli("recover", "--repo", repo).code == 0

    kept = index_tree(repo)
    before = stats(cli, repo)
    assert stats(cli, repo, "--rebuild") == before
    assert index_tree(repo) == kept  # the same tree, entry for entry and count for count
    listed = json.loads(cli("history", "--repo", repo, "--format", "json").out)
    states = {e["state"]: sum(x["state"] == e["state"] for x in listed) for e in listed}
    assert before["executions"] == 2 and before["by_state"] == states
    assert before["failing_paths"][0] == {
        "name": "data/hot.txt",
        "steps": 1,
        "broke": 1,
        "rate": 1.0,
    }


def test_history_reads_the_index_and_sees_executions_fetched_from_elsewhere(
    cli, make_repo, tmp_path
):
    seed = make_repo({"README.md": "# r\n", ".tars/improvements/good.yaml": GOOD})
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(origin))
    here, there = tmp_path / "here", tmp_path / "there"
    for clone in (here, there):
        git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert cli("execute", "--repo", there, "--improvement-id", "good", "--push").code == 0
    assert cli("execute", "--repo", here, "--improvement-id", "good").code == 0
    assert len(ExecutionSystem(here).history()) == 1

    ExecutionSystem(here).fetch_journal("origin")  # the index follows the fetched journal
    ids = [e.id for e in ExecutionSystem(here).history()]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    assert stats(cli, here)["executions"] == 2
    assert [e.id for e in ExecutionSystem(here).history(1)] == ids[:1]
    assert git(origin, "rev-parse", "--verify", "refs/tars-bot/stats")  # pushed with the journal


def test_stats_json_is_stable_and_the_text_has_a_chart(cli, make_repo, tmp_path):
    repo = validated_repo(make_repo, tmp_path)
    add_improvement(repo, BAD, "bad.yaml")
    assert cli("execute", "--repo", repo, "--improvement-id", "bad").code == 1
    first = cli("stats", "--repo", repo, "--format", "json").out
    assert first == cli("stats", "--repo", repo, "--format", "json").out
    summary = json.loads(first)
    assert list(summary) == sorted(summary)
    assert summary["culprit_search"]["searches"] == 1
    assert [c["check"] for c in summary["checks"]] == ["tests"]
    text = cli("stats", "--repo", repo).out
    assert "executions per week" in text and "success rate 0%" in text


def test_predictions_are_explained_and_the_same_for_the_same_history(cli, make_repo, tmp_path):
    repo = validated_repo(make_repo, tmp_path)
    add_improvement(repo, BAD, "bad.yaml")
    for _ in range(3):  # data/hot.txt breaks the tests every time
        assert cli("execute", "--repo", repo, "--improvement-id", "bad").code == 1
    plan = cli("plan", "--repo", repo, "--improvement-id", "bad", "--explain-risk")
    assert plan.code == 0, plan.err
    assert plan.out == cli("plan", "--repo", repo, "--improvement-id", "bad", "--explain-risk").out
    risky = next(line for line in plan.out.splitlines() if "risk of step 2" in line)
    calm = next(line for line in plan.out.splitlines() if "risk of step 1" in line)
    assert "path data/hot.txt: 3 of 3 broke a check" in risky
    assert _percent(risky) > 50 > _percent(calm)


def _percent(line: str) -> int:
    return int(line.split("%")[0].rsplit(" ", 1)[-1])


@settings(deadline=None)  # the search takes longer than 200 ms on a loaded machine
@given(
    st.integers(min_value=1, max_value=40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(min_value=0, max_value=n - 1),
            st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
        )
    )
)
def test_the_weighted_search_finds_the_culprit_bisection_finds(case):
    n, culprit, weights = case
    runs = {"plain": 0, "weighted": 0}

    def fails(kind: str):
        def probe(index: int) -> bool:
            runs[kind] += 1
            return index >= culprit

        return probe

    assert search.first_failing(n, fails("plain"), None) == culprit
    assert search.first_failing(n, fails("weighted"), weights) == culprit
    assert runs["plain"] <= search.bisection_runs(n)
    assert runs["weighted"] <= search.bisection_runs(n) + 1  # a wrong guess costs one run


def test_without_history_the_search_is_plain_bisection():
    probed = []
    search.first_failing(16, lambda i: probed.append(i) or i >= 11, None)
    assert probed == [7, 11, 9, 10]


def test_culprit_weights_follow_the_risks():
    risks = [Risk(1, 0.1, 0.1, ()), Risk(2, 0.8, 0.1, ()), Risk(3, 0.1, 0.1, ())]
    weights = culprit_weights(risks)
    assert abs(sum(weights) - 1) < 1e-9 and weights[1] == max(weights)


def test_a_step_likely_to_break_the_tests_runs_them_right_away(cli, make_repo, tmp_path):
    repo = validated_repo(make_repo, tmp_path)
    add_improvement(repo, BAD, "bad.yaml")
    for _ in range(3):
        assert cli("execute", "--repo", repo, "--improvement-id", "bad").code == 1
    config = '[tool.tars-bot]\nsandbox = "off"\nearly_checks_above = 0.5\n'
    commit_files(repo, {"pyproject.toml": config}, "check risky steps early")
    assert cli("execute", "--repo", repo, "--improvement-id", "bad").code == 1
    latest = json.loads(cli("history", "--repo", repo, "--format", "json", "--limit", "1").out)[0]
    first, second = latest["steps"]
    assert [c["check"] for c in second["checks"]][-1] == "tests"  # run as the step's own check
    assert second["state"] == "failed"
    assert "tests" not in [c["check"] for c in first["checks"]]  # a calm step waits for the tip
    assert latest["culprits"] == []  # caught at the step: no search needed


def test_a_steps_planned_size_counts_where_its_action_tells(make_repo):
    repo = make_repo({"README.md": "# r\n"})
    big = "\\n".join(f"line {n}" for n in range(1500))
    text = (
        f'title: sizes\nsteps:\n  - {{name: big, write: {{path: big.txt, content: "{big}"}}}}\n'
        "  - {name: small, write: {path: small.txt, content: x}}\n"
        "  - {name: cmd, run: 'touch c.txt', scope: [c.txt]}\n"
    )
    add_improvement(repo, text, "sizes.yaml")
    system = ExecutionSystem(repo)
    plan = system.plan(system.load_improvement(repo / ".tars/improvements/sizes.yaml"))
    history = {
        "steps": {
            "all": {"n": 40, "bad": 8},
            "lines": {">=1000": {"n": 6, "bad": 6}, "<10": {"n": 30, "bad": 1}},
        }
    }
    big_risk, small_risk, run_risk = learning.risks(plan, history)
    assert [f.feature for f in big_risk.factors] == ["lines >=1000"]
    assert [f.feature for f in small_risk.factors] == ["lines <10"]
    assert run_risk.factors == ()  # a command's size is not known before it runs
    assert big_risk.probability > run_risk.probability > small_risk.probability
