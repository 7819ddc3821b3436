"""The Change Validator on real repositories with real (tiny) noxfiles."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from tests.helpers import add_improvement, git, history, make_validated_repo


def six_steps(bad: int | None, **extra: str) -> str:
    steps = "\n".join(
        f"  - {{name: s{n}, write: {{path: data/s{n}.txt, content: {'BAD' if n == bad else 'ok'}}}}}"
        for n in range(1, 7)
    )
    options = "".join(f"{key}: {value}\n" for key, value in extra.items())
    return f"title: six\nvalidation: {{final: [tests]}}\n{options}steps:\n{steps}\n"


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_bisect_names_the_breaking_step_in_few_runs(cli, make_repo, tmp_path):
    repo, counter = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, six_steps(bad=4))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 1, result.err + result.out
    [execution] = history(cli, repo)
    assert execution["state"] == "rolled_back"
    assert (
        execution["failure_reason"] == 'step 4 "s4": nox session tests failed (1 failed, 5 passed)'
    )
    assert runs(counter) <= 1 + math.ceil(math.log2(6)) + 1
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    [tests] = execution["checks"]
    assert (
        tests["check"] == "tests" and tests["status"] == "failed" and "1 failed" in tests["output"]
    )
    assert tests["passed"] is False and tests["duration_s"] > 0


def test_drop_step_keeps_the_other_steps_and_the_tip_passes(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, six_steps(bad=4, on_failure="drop-step"))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    [execution] = history(cli, repo)
    assert [s["state"] for s in execution["steps"]] == ["applied"] * 3 + ["reverted"] + [
        "applied"
    ] * 2
    assert [c["status"] for c in execution["checks"]] == ["passed"]
    files = git(repo, "ls-tree", "--name-only", "tars-bot/imp", "data/").split()
    assert files == [f"data/{name}.txt" for name in ("base", "s1", "s2", "s3", "s5", "s6")]
    assert execution["head_commit"] == git(repo, "rev-parse", "tars-bot/imp")


@pytest.mark.parametrize("bad", [None, 1, 3, 6])
def test_each_and_bisect_agree(cli, make_repo, tmp_path, bad):
    verdicts = {}
    for strategy in ("each", "bisect"):
        repo, _ = make_validated_repo(make_repo, tmp_path, strategy)
        text = six_steps(bad).replace(
            "{final: [tests]}", f"{{final: [tests], strategy: {strategy}}}"
        )
        add_improvement(repo, text)
        cli("execute", "--repo", repo, "--improvement-id", "imp")
        [execution] = history(cli, repo)
        verdicts[strategy] = (execution["state"], execution["failure_reason"])
    assert verdicts["each"] == verdicts["bisect"]
    assert (verdicts["bisect"][0] == "succeeded") is (bad is None)


def test_validating_a_tree_again_hits_the_cache(cli, make_repo, tmp_path):
    repo, counter = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, six_steps(bad=None))
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    [execution] = history(cli, repo)
    before = runs(counter)
    assert before > 0
    result = cli("validate", "--repo", repo, "--execution-id", execution["id"])
    assert result.code == 0, result.err
    assert "nox session tests passed" in result.out and "(cached)" in result.out
    assert runs(counter) == before
    fresh = cli("validate", "--repo", repo, "--execution-id", execution["id"], "--fresh")
    assert fresh.code == 0 and "(cached)" not in fresh.out
    assert runs(counter) == before + 1
    fresh = cli(
        "validate", "--repo", repo, "--execution-id", execution["id"], "--sessions", "old_python"
    )
    assert fresh.code == 1 and "could not run (Python interpreter 3.99 not found)" in fresh.out


def test_a_missing_interpreter_is_not_a_test_failure(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(repo, six_steps(bad=None).replace("final: [tests]", "final: [old_python]"))
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    [execution] = history(cli, repo)
    assert execution["state"] == "unvalidated"
    assert execution["failure_reason"] == (
        "could not validate: nox session old_python could not run "
        "(Python interpreter 3.99 not found)"
    )


def test_a_faster_command_is_a_met_benefit(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    (repo / "slow.py").write_text("import time\ntime.sleep(0.3)\n")
    git(repo, "add", "slow.py")
    git(repo, "commit", "-qm", "slow")
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: faster
            expected_benefits:
              - {name: run time, command: python slow.py, measure: wall_time, target: "-20%", repeat: 3}
            steps:
              - {name: no sleep, edit: {path: slow.py, search: "time.sleep(0.3)", replace: "pass"}}
            """),
    )
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    [benefit] = history(cli, repo)[0]["benefits"]
    assert benefit["name"] == "run time" and benefit["measure"] == "wall_time"
    assert benefit["before"] > benefit["after"]
    assert benefit["change"] < 0 and benefit["met"] is True
    status = cli("status", "--repo", repo, "--execution-id", history(cli, repo)[0]["id"])
    assert "benefit run time:" in status.out and "met" in status.out


def test_a_required_benefit_not_met_fails_the_execution(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: no gain
            expected_benefits:
              - {name: answer, command: "echo 42", measure: output, target: "+10%", repeat: 1, required: true}
            steps: [{name: w, write: {path: data/x.txt, content: ok}}]
            """),
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    [execution] = history(cli, repo)
    assert execution["failure_reason"] == "benefit 'answer' not met: +0.0% (target +10%)"


def test_a_removed_public_function_breaks_the_api_check(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: drop old
            validation: {api: [pkg]}
            steps:
              - name: remove old
                edit: {path: pkg/__init__.py, search: "\\n\\ndef old(x):\\n    return x\\n", replace: ""}
            """),
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    [execution] = history(cli, repo)
    assert execution["failure_reason"].startswith("API check: 1 breaking change(s): ")
    assert "old" in execution["failure_reason"] and "removed" in execution["failure_reason"].lower()


def test_per_step_checks_compile_and_ruff(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(
        repo, "title: t\nsteps: [{name: broken, write: {path: pkg/bad.py, content: 'def f(:'}}]\n"
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 1
    [execution] = history(cli, repo)
    assert execution["failure_reason"].startswith(
        'step 1 "broken": per-step check: compile failed (pkg/bad.py:1'
    )

    pyproject = "[tool.ruff]\nline-length = 100\n\n[tool.tars-bot]\nheal = []\n"  # not mended
    ruff_repo = make_repo({"pyproject.toml": pyproject, "a.py": "x = 1\n"}, name="ruffed")
    add_improvement(
        ruff_repo, 'title: t\nsteps: [{name: ugly, write: {path: b.py, content: "x  =  1\\n"}}]\n'
    )
    assert cli("execute", "--repo", ruff_repo, "--improvement-id", "imp").code == 1
    [execution] = history(cli, ruff_repo)
    assert (
        execution["failure_reason"]
        == 'step 1 "ugly": per-step check: ruff format failed (b.py: would be reformatted by ruff format)'
    )


def test_drop_step_keeps_a_later_run_step_that_only_might_have_touched_its_files(
    cli, make_repo, tmp_path
):
    """The planner orders a `run` step after every step whose files its scope covers; that is
    an order, not a dependency: its real files decide whether it built on the culprit."""
    repo, _ = make_validated_repo(make_repo, tmp_path)
    text = textwrap.dedent("""\
        title: t
        on_failure: drop-step
        validation: {final: [tests]}
        steps:
          - {name: good, write: {path: data/a.txt, content: ok}}
          - {name: bad, write: {path: data/b.txt, content: BAD}}
          - {name: other file, run: "echo ok > data/c.txt", scope: ["data/**"]}
          - {name: declared, run: "echo ok > data/d.txt", scope: ["data/d.txt"], depends_on: [bad]}
        """)
    add_improvement(repo, text)
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    [execution] = history(cli, repo)
    assert [s["state"] for s in execution["steps"]] == [
        "applied",
        "reverted",
        "applied",
        "reverted",
    ]
    files = git(repo, "ls-tree", "--name-only", "tars-bot/imp", "data/").split()
    assert files == ["data/a.txt", "data/base.txt", "data/c.txt"]


def test_drop_step_finds_a_second_culprit_without_blaming_the_steps_between(
    cli, make_repo, tmp_path
):
    """After step 2 is dropped, the steps after it still carry its change in their commits:
    the search for the next culprit must probe trees without it, or it blames step 3."""
    repo, _ = make_validated_repo(make_repo, tmp_path)
    steps = "\n".join(
        f"  - {{name: s{n}, write: {{path: data/s{n}.txt, content: {'BAD' if n in (2, 5) else 'ok'}}}}}"
        for n in range(1, 7)
    )
    add_improvement(
        repo, f"title: t\non_failure: drop-step\nvalidation: {{final: [tests]}}\nsteps:\n{steps}\n"
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    [execution] = history(cli, repo)
    states = [s["state"] for s in execution["steps"]]
    assert states == ["applied", "reverted", "applied", "applied", "reverted", "applied"]
    assert [c["step"] for c in execution["culprits"]] == [2, 5]
    files = git(repo, "ls-tree", "--name-only", "tars-bot/imp", "data/").split()
    assert files == [f"data/{name}.txt" for name in ("base", "s1", "s3", "s4", "s6")]


def test_a_run_step_after_a_per_step_session_sees_no_bytecode_the_session_left(
    cli, make_repo, tmp_path
):
    """A repository without a .gitignore: nox compiling the noxfile must not leave a
    __pycache__ that the next run step would be blamed for."""
    repo, _ = make_validated_repo(make_repo, tmp_path)
    text = (
        "title: t\nvalidation: {per_step: [tests]}\nsteps:\n"
        "  - {name: data, write: {path: data/new.txt, content: ok}}\n"
        "  - {name: touch, run: 'echo more >> data/new.txt', scope: [data/**]}\n"
    )
    add_improvement(repo, text)
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.out
    assert git(repo, "ls-tree", "-r", "--name-only", "tars-bot/imp").count("pyc") == 0
