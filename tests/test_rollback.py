"""`tars-bot rollback` (whole executions and single steps) and its verification."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tars_bot import ExecutionSystem, Improvement, TarsError
from tests.helpers import add_improvement, commit_files, git

FILES = {"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"}

STEPS = """\
    title: three files
    steps:
      - {name: A, edit: {path: a.txt, search: alpha, replace: ALPHA}}
      - {name: B, edit: {path: b.txt, search: beta, replace: BETA}}
      - {name: C, edit: {path: c.txt, search: gamma, replace: GAMMA}}
      - {name: B again, edit: {path: b.txt, search: BETA, replace: BETA!}}
    """


def run(cli, repo: Path, improvement_id: str = "imp") -> str:
    result = cli("execute", "--repo", repo, "--improvement-id", improvement_id)
    assert result.code == 0, result.err + result.out
    return json.loads(cli("history", "--repo", repo, "--format", "json", "--limit", "1").out)[0][
        "id"
    ]


def tree(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}")


def test_rolling_back_one_step_after_another(cli, make_repo):
    """The second step rollback replays the plan without the first one too."""
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    execution_id = run(cli, repo)
    for step in ("3", "1"):
        result = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", step)
        assert result.code == 0, result.err
    assert git(repo, "show", "tars-bot/imp:a.txt") == "alpha"
    assert git(repo, "show", "tars-bot/imp:c.txt") == "gamma"
    assert git(repo, "show", "tars-bot/imp:b.txt") == "BETA!"


def test_rolling_back_an_independent_middle_step(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    execution_id = run(cli, repo)
    tip = git(repo, "rev-parse", "tars-bot/imp")

    result = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "3")
    assert result.code == 0, result.err
    assert 'reverted step 3 "C"' in result.out
    assert git(repo, "show", "tars-bot/imp:c.txt") == "gamma"
    assert git(repo, "show", "tars-bot/imp:b.txt") == "BETA!"
    assert git(repo, "rev-parse", "tars-bot/imp~1") == tip  # a new commit, history kept
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", "tars-bot/imp")
    c_commit = git(repo, "rev-parse", "tars-bot/imp~2")
    assert f"Tars-Revert-Of: {c_commit}" in trailers and "Tars-Step: 3" in trailers

    status = json.loads(
        cli("status", "--repo", repo, "--execution-id", execution_id, "--format", "json").out
    )
    assert [s["state"] for s in status["steps"]] == ["applied", "applied", "reverted", "applied"]
    assert status["head_commit"] == git(repo, "rev-parse", "tars-bot/imp")

    # the same tree as executing the plan without step C
    step_c = "  - {name: C, edit: {path: c.txt, search: gamma, replace: GAMMA}}\n"
    add_improvement(repo, textwrap.dedent(STEPS).replace(step_c, ""), "without-c.yaml")
    run(cli, repo, "without-c")
    assert tree(repo, "tars-bot/imp") == tree(repo, "tars-bot/without-c")

    again = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "3")
    assert again.code == 0 and "step 3 of execution" in again.out  # idempotent
    assert "is already rolled back" in again.out


def test_a_step_others_build_on_needs_cascade(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    execution_id = run(cli, repo)
    tip = git(repo, "rev-parse", "tars-bot/imp")

    refused = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "2")
    assert refused.code == 2
    assert 'step 2 cannot be reverted alone: later steps build on it (4 "B again")' in refused.err
    assert git(repo, "rev-parse", "tars-bot/imp") == tip

    result = cli(
        "rollback", "--repo", repo, "--execution-id", execution_id, "--step", "2", "--cascade"
    )
    assert result.code == 0, result.err
    assert result.out.index('step 4 "B again"') < result.out.index('step 2 "B"')  # newest first
    assert git(repo, "log", "-2", "--format=%s", "tars-bot/imp").splitlines() == [
        'Revert step 2 "B"',
        'Revert step 4 "B again"',
    ]
    assert git(repo, "show", "tars-bot/imp:b.txt") == "beta"
    assert git(repo, "show", "tars-bot/imp:a.txt") == "ALPHA"
    assert git(repo, "show", "tars-bot/imp:c.txt") == "GAMMA"


def test_full_rollback_is_verified_and_final(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    git(repo, "branch", "feature")
    git(repo, "tag", "v1")
    execution_id = run(cli, repo)
    tip = git(repo, "rev-parse", "tars-bot/imp")

    result = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert result.code == 0, result.err
    assert "verified" in result.out
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    journal = git(repo, "rev-parse", f"refs/tars-bot/executions/{execution_id}")
    assert git(repo, "merge-base", "--is-ancestor", tip, journal) == ""  # tip kept reachable
    status = json.loads(
        cli("status", "--repo", repo, "--execution-id", execution_id, "--format", "json").out
    )
    assert status["state"] == "rolled_back"

    again = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert again.code == 0 and "already rolled back" in again.out  # idempotent
    step = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "1")
    assert step.code == 0 and "already rolled back" in step.out


def test_rollback_never_drops_commits_tars_bot_did_not_make(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    execution_id = run(cli, repo)
    git(repo, "checkout", "-q", "tars-bot/imp")
    mine = commit_files(repo, {"mine.txt": "human work\n"}, "human commit")
    git(repo, "checkout", "-q", "main")

    result = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert result.code == 2 and "a commit tars-bot did not make" in result.err
    assert git(repo, "rev-parse", "tars-bot/imp") == mine
    step = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "1")
    assert step.code == 2 and "is not at" in step.err
    assert git(repo, "rev-parse", "tars-bot/imp") == mine


def test_rollback_usage_errors(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    execution_id = run(cli, repo)
    assert cli("rollback", "--repo", repo, "--execution-id", execution_id, "--step", "9").code == 2
    cascade = cli("rollback", "--repo", repo, "--execution-id", execution_id, "--cascade")
    assert cascade.code == 2 and "--cascade goes with --step" in cascade.err
    unknown = cli("rollback", "--repo", repo, "--execution-id", "nope")
    assert unknown.code == 2 and "no such execution" in unknown.err


def test_dry_runs_have_nothing_to_roll_back(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    assert cli("execute", "--repo", repo, "--improvement-id", "imp", "--dry-run").code == 0
    [execution] = json.loads(cli("history", "--repo", repo, "--format", "json").out)
    result = cli("rollback", "--repo", repo, "--execution-id", execution["id"])
    assert result.code == 2 and "dry run" in result.err


# Property: whenever a step rollback succeeds, the branch holds what executing the plan without
# that step produces (computed independently, by a second execution).
PATHS = ["a.txt", "b.txt", "d/e.txt"]
EXAMPLES = itertools.count()
step_actions = st.one_of(
    st.builds(
        lambda p, s, r: {"edit": {"path": p, "search": s, "replace": r}},
        st.sampled_from(PATHS),
        st.sampled_from(["alpha", "beta", "x", "y"]),
        st.sampled_from(["x", "y", "z\n"]),
    ),
    st.builds(
        lambda p, c: {"write": {"path": p, "content": c}},
        st.sampled_from(PATHS),
        st.sampled_from(["alpha\n", "x\n", "beta y\n"]),
    ),
    st.builds(lambda p: {"delete": [p]}, st.sampled_from(PATHS)),
    # a command: its change is replayed from its commit (the others are applied again)
    st.builds(
        lambda p, text: {"run": f"mkdir -p d && printf '{text}\\n' >> {p}", "scope": ["**"]},
        st.sampled_from(PATHS),
        st.sampled_from(["r", "s"]),
    ),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=st.lists(step_actions, min_size=2, max_size=5), pick=st.integers(0, 4))
def test_step_rollback_equals_replay_without_the_step(make_repo, actions, pick):
    repo = make_repo(
        {"a.txt": "alpha\n", "b.txt": "beta x\n", "d/e.txt": "y\n"}, name=f"r{next(EXAMPLES)}"
    )
    steps = [{"name": f"s{i}", **action} for i, action in enumerate(actions)]
    system = ExecutionSystem(repo)
    full = Improvement.model_validate({"id": "full", "title": "t", "steps": steps})
    try:
        plan = system.plan(full)
    except TarsError:
        event("infeasible plan")
        return
    result = system.execute(plan)
    if not result.success:  # only a step after a command can fail: the planner checked the rest
        assert any("run" in step for step in steps[: len(steps) - 1]), result.failure_reason
        event("execution failed after a command")
        return
    result_tip = git(repo, "rev-parse", "tars-bot/full")
    applied = [s for s in result.steps if s.state == "applied"]
    if not applied:
        return
    number = applied[pick % len(applied)].number
    try:
        execution = system.rollback(result.execution_id, step=number)
    except TarsError:
        event("step rollback refused")
        assert git(repo, "rev-parse", "tars-bot/full") == result_tip
        return
    event("step rolled back")
    if len(applied) == 1:  # nothing left: rolled back as a whole
        assert execution.state == "rolled_back"
        assert git(repo, "branch", "--list", "tars-bot/full") == ""
        return
    assert execution.head_commit == git(repo, "rev-parse", "tars-bot/full")

    name = plan.steps[number - 1].name
    without = Improvement.model_validate(
        {"id": "without", "title": "t", "steps": [s for s in steps if s["name"] != name]}
    )
    other = system.execute(system.plan(without))
    assert other.success
    assert tree(repo, "tars-bot/full") == tree(repo, "tars-bot/without")


def _lock_owned_by(repo: Path, improvement: str, pid: int, started_at: str) -> None:
    """A lock ref as a process would leave it (written with git plumbing, not tars-bot)."""
    owner = json.dumps(
        {"execution": "e-1", "pid": pid, "host": socket.gethostname(), "started_at": started_at}
    )
    blob = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
        input=owner,
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "-C", str(repo), "mktree"],
        input=f"100644 blob {blob}\towner.json\n",
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    commit = git(repo, "commit-tree", tree, "-m", "lock")
    git(repo, "update-ref", f"refs/tars-bot/locks/{improvement}", commit)


def test_stale_locks_are_told_apart_from_live_ones(cli, make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    # this test's own process is alive, and started after 2000: its pid was "reused"
    _lock_owned_by(repo, "imp", os.getpid(), "2000-01-01T00:00:00+00:00")
    held = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert held.code == 2 and "that process is gone: run `tars-bot recover`" in held.err
    result = cli("recover", "--repo", repo)
    assert "released stale lock locks/imp" in result.out
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0

    # a lock whose owner runs (started before the record) is left alone
    _lock_owned_by(repo, "other", os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"))
    assert "locks/other" not in cli("recover", "--repo", repo).out
    assert git(repo, "for-each-ref", "refs/tars-bot/locks/other") != ""


def test_a_branch_the_user_checked_out_is_never_moved(cli, make_repo, tmp_path):
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(STEPS))
    execution_id = run(cli, repo)
    tip = git(repo, "rev-parse", "tars-bot/imp")
    review = tmp_path / "review"
    git(repo, "worktree", "add", "-q", str(review), "tars-bot/imp")  # the user reviews it there
    for args in ((), ("--step", "3")):
        result = cli("rollback", "--repo", repo, "--execution-id", execution_id, *args)
        assert result.code == 2 and f"branch tars-bot/imp is checked out in {review}" in result.err
    again = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert again.code == 2 and "is checked out in" in again.err
    assert git(repo, "rev-parse", "tars-bot/imp") == tip
    assert git(review, "status", "--porcelain") == ""

    git(repo, "worktree", "remove", str(review))
    git(repo, "checkout", "-q", "tars-bot/imp")  # in the main checkout, now
    result = cli("rollback", "--repo", repo, "--execution-id", execution_id)
    assert result.code == 2 and f"checked out in {repo}" in result.err
    git(repo, "checkout", "-q", "main")
    assert cli("rollback", "--repo", repo, "--execution-id", execution_id).code == 0
