"""What a nox run means for a tree (validation/validator.py), through `Validator.run` on a tiny
noxfile whose sessions need no virtualenv: passed, failed (with the test summary), or error
when the run says nothing of the tree (timeout, skipped, no such session, no package index)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tars_bot.config import parse_config
from tars_bot.execution.workspace import Workspace
from tars_bot.git import Repo
from tars_bot.models import CheckResult
from tars_bot.validation.validator import Validator
from tests.helpers import commit_files, git

NOXFILE = """\
import nox


@nox.session(venv_backend="none", tags=["fast"])
def passes(session):
    session.run("python", "-c", "print('=== 6 passed, 1 skipped in 0.01s ===')")


@nox.session(venv_backend="none")
def fails(session):
    session.run("python", "-c", "print('=== 1 failed, 5 passed in 0.01s ==='); raise SystemExit(1)")


@nox.session(venv_backend="none")
def fails_quietly(session):
    session.run("python", "-c", "raise SystemExit(3)")


@nox.session(venv_backend="none")
def skips(session):
    session.skip("no database here")


@nox.session(python="3.99")
def old_python(session):
    pass


@nox.session(venv_backend="none")
def index_down(session):
    session.run(
        "python", "-c",
        # split, so that nox's echo of the command is not the line that matches
        "print('ERROR: No matching distribution ' + 'found for nothing-here'); raise SystemExit(1)",
    )


@nox.session(venv_backend="none")
def hooks_offline(session):
    session.run(
        "python", "-c",
        "print('fatal: unable to access https://github.com/x/y/: Could not ' + "
        "'resolve host: github.com'); raise SystemExit(1)",
    )


@nox.session(venv_backend="none")
def a_test_needs_the_network(session):
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "net_test.py")


@nox.session(venv_backend="none")
def slow(session):
    session.run("python", "-c", "import time; time.sleep(60)")
"""

NET_TEST = """\
def test_offline():
    pass


def test_online():
    print("urllib3: Failed to establish a new connection: [Errno -3] name resolution")
    raise AssertionError("needs the network")
"""


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {
            # the verdicts are the sandbox's business elsewhere; here only nox's outcome counts
            "pyproject.toml": '[tool.tars-bot]\nsandbox = "off"\ncheck_timeout = 15\n',
            "noxfile.py": NOXFILE,
            "net_test.py": NET_TEST,
        }
    )


def validator(repo: Path) -> Iterator[Validator]:
    git_repo = Repo(repo)
    base = git(repo, "rev-parse", "HEAD")
    config = parse_config(git_repo.read(git_repo.resolve(base)[1], "pyproject.toml"))
    with Workspace(git_repo, "verdicts", base, None, 1) as space:
        checker = Validator(git_repo, config, config.limits, space.checkout, base)
        try:
            yield checker
        finally:
            checker.close()


def check(repo: Path, session: str, commit: str = "HEAD") -> CheckResult:
    for checker in validator(repo):
        [result] = checker.run(git(repo, "rev-parse", commit), [session])
        return result
    raise AssertionError("no validator")


def test_a_passing_session_passes_with_its_test_summary(repo):
    result = check(repo, "passes")
    assert (result.status, result.summary) == ("passed", "6 passed, 1 skipped")
    assert result.tree == git(repo, "rev-parse", "HEAD^{tree}")
    assert not result.cached


def test_a_tag_selects_its_sessions(repo):
    assert check(repo, "tag:fast").status == "passed"


def test_a_failing_session_fails_with_its_test_summary(repo):
    result = check(repo, "fails")
    assert (result.status, result.summary) == ("failed", "1 failed, 5 passed")
    assert "1 failed, 5 passed" in result.output


def test_a_failure_without_a_summary_still_fails(repo):
    result = check(repo, "fails_quietly")
    assert (result.status, result.summary) == ("failed", "session failed")


def test_a_skipped_session_is_an_error_giving_its_reason(repo):
    result = check(repo, "skips")
    assert (result.status, result.summary) == ("error", "no database here")


def test_a_missing_interpreter_is_an_error_not_a_failure(repo):
    result = check(repo, "old_python")
    assert result.status == "error"
    assert "3.99" in result.summary


def test_an_unreachable_package_index_is_an_error_not_a_failure(repo):
    result = check(repo, "index_down")
    assert result.status == "error"
    assert result.summary == (
        "could not set up the session: ERROR: No matching distribution found for nothing-here"
    )


def test_a_hook_runner_that_cannot_reach_its_host_is_an_error_not_a_failure(repo):
    result = check(repo, "hooks_offline")
    assert result.status == "error"
    assert "Could not resolve host: github.com" in result.summary


def test_tests_that_ran_and_failed_are_failures_whatever_they_printed(repo):
    """A test that needs the network fails on the base too: only per-test results let the
    comparison with the base judge it, so the run is not thrown away as the machine's fault."""
    result = check(repo, "a_test_needs_the_network")
    assert result.status == "failed"
    assert result.tests is not None and result.tests.failing == ["net_test::test_online"]


def test_a_timeout_is_an_error_naming_the_limit(repo):
    result = check(repo, "slow")
    assert (result.status, result.summary) == ("error", "timed out after 15s (check_timeout)")


@pytest.mark.parametrize("session", ["no_such_session", "tag:no_such_tag"])
def test_selecting_nothing_is_an_error(repo, session):
    result = check(repo, session)
    assert (result.status, result.summary) == (
        "error",
        "nox could not load the noxfile or select the session",
    )


def test_a_noxfile_that_does_not_load_is_an_error(repo):
    commit_files(repo, {"noxfile.py": "import nox\nthis is not python\n"}, "broken")
    result = check(repo, "passes")
    assert (result.status, result.summary) == (
        "error",
        "nox could not load the noxfile or select the session",
    )


def test_a_result_is_cached_by_tree_and_an_error_is_not(repo):
    for checker in validator(repo):
        head = git(repo, "rev-parse", "HEAD")
        first, again = checker.run(head, ["fails"]), checker.run(head, ["fails"])
        assert not first[0].cached and again[0].cached
        assert again[0].status == first[0].status == "failed"
        checker.run(head, ["skips"])
        assert checker.run(head, ["skips"])[0].cached is False
        assert checker.runs == {"fails": 1, "skips": 2}
