"""The check run `tars-bot / validation` and the Actions job summary: the annotations read from
real pytest and ruff output, and what the Action publishes on the fake GitHub."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tars_bot.errors import TarsError
from tars_bot.execution.sandbox import ruff_binary
from tars_bot.github import action, checks
from tars_bot.github.client import GitHubClient
from tars_bot.models import CheckResult, Execution, Improvement
from tars_bot.system import ExecutionSystem
from tests.helpers import (
    ISSUE_IMPROVEMENT,
    comment_payload,
    commit_files,
    environ,
    git,
    job_checkout,
    reactions,
    run_action,
    stage,
)

FAILING_TESTS = """\
import os


def helper(x):
    assert x == 2


def test_y():
    assert 1 == 2


def test_z():
    helper(1)
"""
FILES = frozenset({"tests/test_x.py"})


def pytest_output(tmp_path: Path, *args: str) -> str:
    """What pytest prints for FAILING_TESTS, run as a process."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # no configuration from above tmp_path
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "test_x.py").write_text(FAILING_TESTS)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, "tests"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout


def ruff_output(tmp_path: Path, output_format: str) -> str:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "test_x.py").write_text(FAILING_TESTS)
    command = [ruff_binary(), "check", "--isolated", "--no-cache", "--select", "F401"]
    command += ["--output-format", output_format, "tests"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout


def failed(output: str, check: str = "tests") -> CheckResult:
    return CheckResult(check=check, status="failed", tree="0" * 40, duration_s=1.0, output=output)


def execution_with(*results: CheckResult) -> Execution:
    """A failed execution whose final checks on the tip gave `results`."""
    return Execution(
        id="20250101-000000-abcd",
        improvement="imp",
        state="rolled_back",
        branch="tars-bot/imp",
        base_commit="1" * 40,
        head_commit="2" * 40,
        started_at="2025-01-01T00:00:00+00:00",
        steps=[],
        checks=list(results),
    )


def places(found: list) -> list[tuple]:
    return [(f.path, f.line, f.level) for f in found]


# -- reading failing output ------------------------------------------------------------------------
@pytest.mark.parametrize("traceback", ["long", "short"])
def test_pytest_tracebacks_name_where_each_test_failed(tmp_path, traceback):
    found = checks.findings(pytest_output(tmp_path, f"--tb={traceback}"))
    assert places(found) == [
        ("tests/test_x.py", 9, "failure"),
        ("tests/test_x.py", 5, "failure"),  # in helper, where test_z's assertion failed
        ("tests/test_x.py", 13, "notice"),  # the call in test_z that led there
    ]
    assert [f.title for f in found] == ["test_y failed", "test_z failed", "test_z failed"]
    assert found[0].message == "assert 1 == 2" and found[1].message == "assert 1 == 2"


def test_a_test_whose_traceback_was_cut_off_is_placed_by_the_short_summary(tmp_path):
    output = pytest_output(tmp_path, "-q")
    tail = "\n".join(output.splitlines()[-3:])  # FAILED ... lines: the tail a check keeps
    assert tail.startswith("FAILED tests/test_x.py::test_y - assert 1 == 2")
    found = checks.findings(tail)
    assert places(found) == [("tests/test_x.py", 1, "failure")] * 2
    assert [(f.title, f.message) for f in found] == [
        ("test_y failed", "assert 1 == 2"),
        ("test_z failed", "assert 1 == 2"),
    ]


@pytest.mark.parametrize("output_format", ["concise", "full"])
def test_ruff_findings_in_either_format(tmp_path, output_format):
    [found] = checks.findings(ruff_output(tmp_path, output_format))
    assert (found.path, found.line, found.level) == ("tests/test_x.py", 1, "failure")
    assert found.message.startswith("F401") and "`os` imported but unused" in found.message


def test_fixed_samples_compile_warnings_and_captured_output():
    output = textwrap.dedent("""\
        src/a.py:3: invalid syntax
        ______________________________ test_prints ______________________________

            def test_prints():
                print("lib/fake.py:7: not a traceback")
        >       assert False
        E       assert False

        tests/test_p.py:4: AssertionError
        ----------------------------- Captured stdout call -----------------------------
        lib/fake.py:7: not a traceback
        =============================== warnings summary ===============================
        tests/test_p.py:1: DeprecationWarning: old
        =========================== short test summary info ============================
        FAILED tests/test_p.py::test_prints - assert False
        """)
    assert places(checks.findings(output)) == [
        ("tests/test_p.py", 4, "failure"),
        ("src/a.py", 3, "failure"),
        ("tests/test_p.py", 1, "warning"),
    ]


def test_annotations_keep_files_of_the_repository_only(tmp_path):
    output = pytest_output(tmp_path, "--tb=short")
    output += "/usr/lib/python3.11/json/decoder.py:355: in raw_decode\n../outside.py:1: x\n"
    annotations = checks.failure_annotations(
        execution_with(failed(output)), (FILES | {"outside.py"}).__contains__
    )
    assert {a.path for a in annotations} == {"tests/test_x.py"}
    first = annotations[0].as_json()
    assert first == {
        "path": "tests/test_x.py",
        "start_line": 9,
        "end_line": 9,
        "annotation_level": "failure",
        "message": "assert 1 == 2",
        "title": "tests: test_y failed",
    }


def test_at_most_50_annotations_failures_first_and_the_summary_says_so(tmp_path):
    (tmp_path / "tests").mkdir()
    many = "".join(f"import m{n}\n" for n in range(60))
    (tmp_path / "tests" / "test_x.py").write_text(many)
    command = [ruff_binary(), "check", "--isolated", "--no-cache", "--select", "F401", "tests"]
    ruff = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    (tmp_path / "other").mkdir()
    tests = pytest_output(tmp_path / "other", "--tb=short")  # its notice comes after all failures
    execution = execution_with(failed(tests), failed(ruff.stdout, "lint"))
    run = checks.check_run(execution, _plan_for(tmp_path), FILES.__contains__)
    assert len(run.annotations) == checks.MAX_ANNOTATIONS
    assert {a.level for a in run.annotations} == {"failure"}
    assert "13 more annotations left off" in run.summary  # 60 + 3 found
    assert run.conclusion == "failure" and run.title.startswith("rolled back: 0 steps applied")


def test_a_report_over_githubs_limit_is_cut_at_the_end_saying_so():
    text = "x" * 70_000
    cut = checks.fit(text)
    assert len(cut) == checks.OUTPUT_LIMIT and cut.startswith("xxx")
    assert cut.endswith("*[cut here to fit GitHub's limit of 65,535 characters]*\n")
    assert checks.fit("short") == "short"


def _plan_for(tmp_path: Path):
    """A real plan: of a one-step improvement on a fresh repository."""
    repo = tmp_path / "planned"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"README.md": "# r\n"}, "initial")
    improvement = Improvement(
        id="imp", title="Imp", steps=[{"name": "n", "write": {"path": "N", "content": "x"}}]
    )
    return ExecutionSystem(repo).plan(improvement)


# -- through the Action ----------------------------------------------------------------------------
NOXFILE = """\
import sys

import nox


@nox.session(venv_backend="none")
def tests(session):
    session.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests")
"""
CHECKED = {
    "noxfile.py": NOXFILE,
    "calc.py": "def double(x):\n    return 2 * x\n",
    "tests/test_calc.py": (
        "from calc import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    ),
}
BREAKING = """\
```yaml
validation: {final: [tests]}
on_failure: drop-step
steps:
  - {name: notes, write: {path: NOTES.md, content: "fine\\n"}}
  - {name: triple, edit: {path: calc.py, search: "2 * x", replace: "3 * x"}}
```
"""


def with_tests(checkout: Path) -> None:
    """The default branch gets a noxfile whose `tests` session runs pytest."""
    commit_files(checkout, CHECKED, "tests")
    git(checkout, "push", "-q", "origin", "HEAD:main")


def check_runs(repo) -> list[dict]:
    return list(repo.check_runs.values())


def test_an_executed_improvement_gets_a_check_run_on_its_tip(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0

    [run] = check_runs(repo)
    assert run["name"] == "tars-bot / validation"
    assert run["head_sha"] == git(origin, "rev-parse", "tars-bot/issue-1")
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["output"]["title"] == "2 steps applied, 1 check passed"
    summary = run["output"]["summary"]
    assert "**tars-bot** validated improvement `issue-1`" in summary
    assert "| 1 | encoding | applied |" in summary and "compile ✅" in summary
    assert run["annotations"] == [] and run["started_at"] <= run["completed_at"]
    status = repo.comments_on(issue.number)[-1].body
    assert status.startswith("✅ Executed:") and "⚠️" not in status


def test_a_dropped_culprit_is_shown_where_it_broke_the_tests(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    with_tests(checkout)
    issue = repo.add_issue("Triple", BREAKING)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0

    [run] = check_runs(repo)
    assert run["head_sha"] == git(origin, "rev-parse", "tars-bot/issue-1")
    assert run["conclusion"] == "success"  # the tip passes: the step that broke it was dropped
    assert run["output"]["title"] == "1 step applied, 1 reverted, 2 checks passed"
    summary = run["output"]["summary"]
    assert 'step 2 "triple" broke tests' in summary and "dropped: reverted by" in summary
    assert "| tests | `" in summary and "| 2 | ❌ failed: 1 failed |" in summary  # bisection
    assert "E       assert 6 == 4" in summary  # the culprit's failing output, fenced
    [where] = run["annotations"]
    assert (where["path"], where["start_line"], where["annotation_level"]) == (
        "tests/test_calc.py",
        5,
        "warning",
    )
    assert where["title"] == "tests: test_double failed (dropped step)"
    assert where["message"].startswith('step 2 "triple", dropped from the branch, broke tests')


def test_a_failed_execution_makes_a_failing_check_run(setup, fake_github, tmp_path):
    """Only a succeeded execution is pushed, so the Action never publishes this one; the check
    run it would make is still GitHub's to accept, on the commit once pushed."""
    checkout, _, repo = setup
    with_tests(checkout)
    issue = repo.add_issue("Triple", BREAKING.replace("on_failure: drop-step\n", ""))
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 1
    assert check_runs(repo) == []  # nothing was pushed to put it on

    system = ExecutionSystem(checkout)
    [execution] = system.history()
    assert execution.state == "rolled_back" and execution.head_commit
    run = checks.check_run(
        execution,
        system.plan_of(execution.id),
        frozenset(system.repo.tree_paths(execution.head_commit)).__contains__,
    )
    assert run.conclusion == "failure"
    assert [(a.path, a.line, a.level) for a in run.annotations] == [
        ("tests/test_calc.py", 5, "failure")
    ]
    git(checkout, "push", "-q", "origin", f"{execution.head_commit}:refs/heads/failed")
    env = environ(fake_github, tmp_path, "none", {})
    with GitHubClient.from_env(env, sleep=lambda s: None, pace=False) as client:
        url = client.create_check_run(checks.NAME, run.head_sha, run.conclusion, run.output)
    [posted] = check_runs(repo)
    assert url == posted["html_url"] and posted["conclusion"] == "failure"
    assert posted["annotations"][0]["message"] == "assert 6 == 4\n +  where 6 = double(2)"


def test_github_takes_check_runs_from_apps_on_commits_it_holds(setup, fake_github, tmp_path):
    _, origin, _ = setup
    main = git(origin, "rev-parse", "main")
    output = {"title": "t", "summary": "s"}
    fake_github.add_token("ghp_personal", "writer")
    env = environ(fake_github, tmp_path, "none", {}) | {"GITHUB_TOKEN": "ghp_personal"}
    personal = GitHubClient.from_env(env, pace=False)
    with personal, pytest.raises(TarsError, match="403 You must authenticate via a GitHub App"):
        personal.create_check_run(checks.NAME, main, "success", output)
    env["GITHUB_TOKEN"] = fake_github.token  # Actions': an App's installation token
    with GitHubClient.from_env(env, pace=False) as client:
        unknown = f"422 Validation Failed \\(No commit found for SHA: {'f' * 40}\\)"
        with pytest.raises(TarsError, match=unknown):
            client.create_check_run(checks.NAME, "f" * 40, "success", output)
        url = client.create_check_run(checks.NAME, main, "success", output)
    assert url.startswith("https://github.com/octo/app/runs/")


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (403, "403 Resource not accessible by integration (check runs need a GitHub App's token"),
        (502, "502 Server Error"),
    ],
)
def test_a_check_run_github_refuses_is_a_warning(setup, fake_github, tmp_path, status, said):
    checkout, _, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    message = "Resource not accessible by integration" if status == 403 else "Server Error"
    page = f'{{"message": "{message}"}}'
    fake_github.fail_next("/repos/octo/app/check-runs", status=status, method="POST", page=page)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0

    status_comment = repo.comments_on(issue.number)[-1].body
    assert status_comment.startswith("✅ Executed: https://github.com/octo/app/pull/")
    assert (
        "⚠️ no check run tars-bot / validation on the branch: GitHub API: cannot" in status_comment
    )
    assert said in status_comment
    assert reactions(repo, payload["comment"]["id"]) == ["eyes", "+1"]
    assert check_runs(repo) == [] and len(repo.pulls()) == 1


def test_the_job_summary_gets_the_report_in_one_job(setup, fake_github, tmp_path):
    checkout, _, repo = setup
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    env = environ(fake_github, tmp_path, "issue_comment", payload)
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    client = lambda e: GitHubClient.from_env(e, sleep=lambda s: None, pace=False)  # noqa: E731
    assert action.run(env, checkout, client) == 0

    [run] = check_runs(repo)
    assert summary.read_text() == "earlier step\n" + run["output"]["summary"] + "\n"


def test_the_job_summary_gets_the_report_in_the_publish_job(setup, fake_github, tmp_path):
    checkout, origin, repo = setup
    issue = repo.add_issue("UTF-8 IO", ISSUE_IMPROVEMENT)
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert stage(fake_github, tmp_path, checkout, "authorize", payload) == 0
    assert (
        stage(fake_github, tmp_path, job_checkout(origin, "execute-job"), "execute", payload) == 0
    )
    summary = tmp_path / "publish-summary.md"
    env = environ(fake_github, tmp_path, "issue_comment", payload)
    env |= {"TARS_BOT_STAGE": "publish", "TARS_BOT_HANDOFF": str(tmp_path / "handoff")}
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    client = lambda e: GitHubClient.from_env(e, sleep=lambda s: None, pace=False)  # noqa: E731
    assert action.run(env, job_checkout(origin, "publish-job"), client) == 0

    [run] = check_runs(repo)
    assert run["head_sha"] == git(origin, "rev-parse", "tars-bot/issue-1")
    assert summary.read_text() == run["output"]["summary"] + "\n"
    assert "State: **succeeded**, branch `tars-bot/issue-1`" in summary.read_text()


def test_only_the_publish_job_may_write_check_runs():
    workflow = Path(__file__).parents[1] / ".github" / "workflows" / "tars-bot.yml"
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    writers = {name for name, job in jobs.items() if job["permissions"].get("checks") == "write"}
    assert writers == {"publish"}
