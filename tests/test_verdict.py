"""What validation tells the user: the culprit step and how it was found, and checks that could
not run (unvalidated, never blamed on a step). Real repositories, real nox runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tars_bot.models import Execution
from tars_bot.system import ExecutionSystem
from tars_bot.ui import markdown
from tests.helpers import add_improvement, git, history, make_validated_repo

# like tests in test_validate.NOXFILE, but its runner cannot run once step 2 is in and step 4 not
FLAKY_NOXFILE = """\
import os
import nox

@nox.session(venv_backend="none")
def tests(session):
    if os.path.exists("data/s2.txt") and not os.path.exists("data/s4.txt"):
        session.skip("runner lost its network")
    session.run("python", "check.py")
"""


def steps(count: int, bad: int | None, **extra: str) -> str:
    lines = "\n".join(
        f"  - {{name: s{n}, write: {{path: data/s{n}.txt, content: {'BAD' if n == bad else 'ok'}}}}}"
        for n in range(1, count + 1)
    )
    options = "".join(f"{key}: {value}\n" for key, value in extra.items())
    return f"title: t\nvalidation: {{final: [tests]}}\n{options}steps:\n{lines}\n"


def last_line(text: str) -> str:
    return text.rstrip().splitlines()[-1]


def cached_trees(repo: Path) -> set[str]:
    """The trees that have a check result in the cache."""
    if not git(repo, "for-each-ref", "refs/tars-bot/checks"):
        return set()
    paths = git(repo, "ls-tree", "-r", "--name-only", "refs/tars-bot/checks").split()
    return {path.split("/")[1] for path in paths}


def test_a_dropped_step_is_named_with_what_it_broke_and_how_it_was_found(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, steps(4, bad=3, on_failure="drop-step"))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    [listed] = history(cli, repo)
    status = cli("status", "--repo", repo, "--execution-id", listed["id"], "--format", "json")
    execution = json.loads(status.out)
    assert listed == execution  # history carries the same record
    commits = [s["commit"] for s in execution["steps"]]
    revert = execution["steps"][2]["revert_commit"]

    # tip fails, the base passes, step 2 passes, step 3 fails: 4 runs; then the new tip passes
    assert re.fullmatch(
        r'succeeded on branch tars-bot/imp with 3 of 4 steps: step 3 "s3" broke tests '
        rf"\(found in 4 runs, \d+\.\ds\) and was dropped \(revert {revert[:7]}\)",
        last_line(result.out),
    ), result.out
    assert "nox >" not in result.out and "===" not in result.out  # nox's output is in the log

    assert execution["failure_reason"] is None
    assert execution["steps"][2]["state"] == "reverted"
    assert execution["steps"][2]["reason"] == "broke tests"
    [culprit] = execution["culprits"]
    assert (culprit["step"], culprit["check"], culprit["runs"]) == (3, "tests", 4)
    assert culprit["summary"] == "1 failed, 5 passed" and culprit["duration_s"] > 0
    assert culprit["result"]["status"] == "failed" and "1 failed" in culprit["result"]["output"]
    probes = [(p["commit"], p["step"], p["status"], p["cached"]) for p in culprit["probes"]]
    assert probes == [
        (commits[3], 4, "failed", False),
        (execution["base_commit"], 0, "passed", False),
        (commits[1], 2, "passed", False),
        (commits[2], 3, "failed", False),
    ]
    log = git(
        repo, "show", f"refs/tars-bot/executions/{execution['id']}:{culprit['probes'][3]['log']}"
    )
    assert "1 failed, 5 passed" in log and "nox > Running session tests" in log

    text = cli("status", "--repo", repo, "--execution-id", execution["id"]).out
    assert "reverted (broke tests)" in text
    assert 'culprit step 3 "s3" broke tests (found in 4 runs' in text
    assert f"tests on {commits[2][:7]} (step 3) failed: 1 failed, 5 passed" in text

    system = ExecutionSystem(repo)
    body = markdown.execution_markdown(Execution(**execution), system.plan_of(execution["id"]))
    assert re.search(
        r'- ❌ step 3 "s3" broke tests \(found in 4 runs, [\d.]+s\) \(1 failed, 5 passed\); '
        f"dropped: reverted by `{revert[:7]}`",
        body,
    ), body
    assert f"| tests | `{commits[1][:7]}` | 2 | ✅ passed: 6 passed | " in body
    assert f"| tests | `{commits[2][:7]}` | 3 | ❌ failed: 1 failed, 5 passed | " in body
    assert "| 3 | s3 | reverted (broke tests) |" in body


def test_a_rolled_back_execution_names_the_runs_and_shows_the_checks_output(
    cli, make_repo, tmp_path
):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, steps(2, bad=2))
    quiet = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert quiet.code == 1
    assert re.fullmatch(
        r'rolled back: step 2 "s2": nox session tests failed \(1 failed, 5 passed\); '
        r"found in 3 runs, \d+\.\ds",
        last_line(quiet.out),
    ), quiet.out
    assert "last lines of the output of check tests:" in quiet.out
    assert quiet.out.count("nox > Running session tests") == 1  # that tail, not 2 runs streamed

    fresh, _ = make_validated_repo(make_repo, tmp_path, "fresh")  # no cached results there
    add_improvement(fresh, steps(2, bad=2))
    verbose = cli("execute", "--repo", fresh, "--improvement-id", "imp", "--verbose")
    assert verbose.code == 1
    [execution] = history(cli, fresh)
    base = f"nox session tests on {execution['base_commit'][:7]} (base)"
    assert verbose.out.count(base) == 1, verbose.out
    for number, step in enumerate(execution["steps"], 1):  # the tip, the base, then step 1
        label = f"nox session tests on {step['commit'][:7]} (step {number})"
        assert verbose.out.count(label) == 1, verbose.out
    assert verbose.out.count("nox > Running session tests") == 3


def test_a_check_that_cannot_run_leaves_the_execution_unvalidated(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, steps(3, bad=None).replace("final: [tests]", "final: [old_python]"))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 1
    [execution] = history(cli, repo)
    reason = "nox session old_python could not run (Python interpreter 3.99 not found)"
    assert execution["state"] == "unvalidated"
    assert execution["failure_reason"] == f"could not validate: {reason}"
    assert execution["culprits"] == []
    assert git(repo, "rev-parse", "tars-bot/imp") == execution["head_commit"]  # kept
    lines = result.out.rstrip().splitlines()
    assert lines[-2] == f"could not validate: {reason}"
    assert f"tars-bot validate --execution-id {execution['id']}" in lines[-1]
    assert f"tars-bot rollback --execution-id {execution['id']}" in lines[-1]
    assert git(repo, "rev-parse", "tars-bot/imp^{tree}") not in cached_trees(repo)

    again = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert again.code == 2 and "could not be validated" in again.err
    assert cli("rollback", "--repo", repo, "--execution-id", execution["id"]).code == 0
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    assert history(cli, repo)[0]["state"] == "rolled_back"


def test_a_bisection_run_that_cannot_run_blames_no_step(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    (repo / "noxfile.py").write_text(FLAKY_NOXFILE)
    git(repo, "commit", "-qam", "flaky runner")
    add_improvement(repo, steps(4, bad=4, on_failure="drop-step"))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 1, result.err + result.out
    [execution] = history(cli, repo)
    assert execution["state"] == "unvalidated"
    assert execution["failure_reason"] == (
        "could not validate: bisecting tests: nox session tests could not run "
        "(runner lost its network) on step 2's commit"
    )
    assert [s["state"] for s in execution["steps"]] == ["applied"] * 4  # nothing dropped
    assert execution["culprits"] == []
    assert git(repo, "rev-parse", "tars-bot/imp") == execution["head_commit"]
    trees = cached_trees(repo)
    assert git(repo, "rev-parse", "tars-bot/imp^{tree}") in trees  # a real failure is kept
    assert git(repo, "rev-parse", f"{execution['steps'][1]['commit']}^{{tree}}") not in trees
