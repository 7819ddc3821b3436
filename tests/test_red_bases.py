"""Validation on a base that already fails some tests: a step is blamed for the failures it
adds, never for the base's own. Real repositories, real nox sessions running real pytest."""

from __future__ import annotations

import pytest

from tars_bot.validation import tests_results
from tests.helpers import add_improvement, git, history

NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    # only pytest's own plugins: quick to start
    session.run(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *session.posargs,
        env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )

@nox.session(venv_backend="none")
def lint(session):
    session.run("python", "-c", "import sys; sys.exit('lint: 1 problem')")

@nox.session(venv_backend="none")
def hostile(session):
    session.run("python", "hostile.py")

@nox.session(venv_backend="none")
def counted(session):
    session.run("python", "counted.py")
"""

# a runner that writes no JUnit report, only pytest's summary line: one known failure, and
# three more for each data file marked BAD
COUNTED = """\
import pathlib, sys
failed = 1 + 3 * sum("BAD" in p.read_text() for p in pathlib.Path("data").glob("*.txt"))
print(f"=== {failed} failed, {5 - failed if failed < 5 else 0} passed in 0.01s ===")
sys.exit(1)
"""

# one test fails on the base already (as a new warning under filterwarnings = error does);
# a data file marked BAD fails three more
SUITE = """\
import pathlib

import pytest


def test_known_bad():
    assert pathlib.Path("data/fixed.txt").exists()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_data(n):
    assert not [p for p in pathlib.Path("data").glob("*.txt") if "BAD" in p.read_text()]


def test_fine():
    pass
"""

# writes where PYTEST_ADDOPTS asks for the JUnit report, as a hostile test could
HOSTILE = """\
import os, shlex, sys
args = shlex.split(os.environ["PYTEST_ADDOPTS"])
path = args[args.index("--junitxml") + 1]
kind = {kind!r}
if kind == "dtd":
    bomb = '<!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    open(path, "w").write(bomb + '<testsuites><testcase classname="t" name="&b;"/></testsuites>')
elif kind == "oversized":
    open(path, "w").write("<testsuites>" + " " * (9 * 2**20) + "</testsuites>")
else:
    os.symlink("/etc/passwd", path)
"""

KNOWN = "tests.test_app::test_known_bad"
BROKEN = [f"tests.test_app::test_data[{n}]" for n in (1, 2, 3)]


def red_repo(make_repo, config: str = "") -> object:
    return make_repo(
        {
            "noxfile.py": NOXFILE,
            "pyproject.toml": f'[tool.tars-bot]\nsandbox = "off"\n{config}',
            "tests/__init__.py": "",
            "tests/test_app.py": SUITE,
            "data/base.txt": "fine\n",
            "counted.py": COUNTED,
        }
    )


def four_steps(bad: int | None, final: str = "tests", **extra: str) -> str:
    steps = "\n".join(
        f"  - {{name: s{n}, write: {{path: data/s{n}.txt, content: {'BAD' if n == bad else 'ok'}}}}}"
        for n in range(1, 5)
    )
    options = "".join(f"{key}: {value}\n" for key, value in extra.items())
    return f"title: four\nvalidation: {{final: [{final}]}}\n{options}steps:\n{steps}\n"


def execute(cli, repo) -> tuple[int, dict, str]:
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    [execution] = history(cli, repo)
    return result.code, execution, result.out


def test_the_step_that_adds_failures_is_dropped_and_the_others_are_kept(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, four_steps(bad=2, on_failure="drop-step"))
    code, execution, out = execute(cli, repo)
    assert code == 0, out
    assert [s["state"] for s in execution["steps"]] == ["applied", "reverted", "applied", "applied"]
    [culprit] = execution["culprits"]
    assert culprit["step"] == 2
    assert culprit["new_failures"] == BROKEN and culprit["known_failures"] == [KNOWN]
    # the base is probed right after the tip, before any step: 4 runs in all
    assert [p["step"] for p in culprit["probes"]] == [4, 0, 2, 1] and culprit["runs"] == 4
    assert culprit["probes"][1]["status"] == "failed"
    [tests] = execution["checks"]
    assert tests["status"] == "failed" and tests["passed"] is True
    assert tests["known_failures"] == [KNOWN]
    assert tests["tests"] == {
        "passed": 4, "failed": 1, "errors": 0, "skipped": 0, "failing": [KNOWN]
    }  # fmt: skip
    last = out.rstrip().splitlines()[-1]
    assert 'step 2 "s2" broke tests' in last
    assert f"tests passed with 1 test already failing on the base: {KNOWN}" in last


def test_rolled_back_the_verdict_names_the_step_and_the_known_failure(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, four_steps(bad=2))
    code, execution, _ = execute(cli, repo)
    assert code == 1
    assert execution["state"] == "rolled_back"
    reason = execution["failure_reason"]
    assert reason.startswith('step 2 "s2": nox session tests failed (4 failed, 1 passed')
    assert f"3 new failures: {', '.join(BROKEN)}" in reason
    assert f"1 already failing on the base: {KNOWN}" in reason
    assert git(repo, "branch", "--list", "tars-bot/*") == ""


def test_a_tip_failing_only_what_the_base_fails_succeeds_naming_it(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, four_steps(bad=None))
    code, execution, out = execute(cli, repo)
    assert code == 0, out
    assert execution["state"] == "succeeded" and execution["culprits"] == []
    [tests] = execution["checks"]
    assert tests["known_failures"] == [KNOWN] and tests["passed"] is True
    assert out.rstrip().splitlines()[-1] == (
        "succeeded on branch tars-bot/imp with 4 of 4 steps: "
        f"tests passed with 1 test already failing on the base: {KNOWN}"
    )
    # the base ran once, as well as the tip: its result is in the check cache
    base_tree = git(repo, "rev-parse", f"{execution['base_commit']}^{{tree}}")
    cached = git(repo, "ls-tree", "-r", "--name-only", "refs/tars-bot/checks").split()
    assert any(path.split("/")[1] == base_tree for path in cached)


def test_a_session_without_test_results_on_a_red_base_is_unvalidated_with_advice(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, four_steps(bad=None, final="lint", on_failure="drop-step"))
    code, execution, _ = execute(cli, repo)
    assert code == 1
    assert execution["state"] == "unvalidated"
    assert execution["culprits"] == []
    assert [s["state"] for s in execution["steps"]] == ["applied"] * 4  # nothing rolled back
    reason = execution["failure_reason"]
    assert "nox session lint failed" in reason and "fails on the base too" in reason
    assert "set `deselect` or `posargs` for lint in [tool.tars-bot], or fix the base" in reason
    assert git(repo, "rev-parse", "tars-bot/imp") == execution["head_commit"]  # kept


def test_a_deselected_known_bad_test_makes_the_base_green(cli, make_repo):
    repo = red_repo(make_repo, 'deselect = ["tests/test_app.py::test_known_bad"]\n')
    add_improvement(repo, four_steps(bad=3, on_failure="drop-step"))
    code, execution, out = execute(cli, repo)
    assert code == 0, out
    [culprit] = execution["culprits"]
    assert culprit["step"] == 3 and culprit["known_failures"] == []
    assert culprit["probes"][1]["status"] == "passed"  # the base, green without that test
    [tests] = execution["checks"]
    assert tests["status"] == "passed" and tests["known_failures"] is None
    assert tests["tests"]["passed"] == 4 and tests["tests"]["failed"] == 0


def test_posargs_reach_the_session(cli, make_repo):
    repo = red_repo(make_repo, '[tool.tars-bot.posargs]\ntests = ["-k", "test_fine"]\n')
    add_improvement(repo, four_steps(bad=None))
    code, execution, out = execute(cli, repo)
    assert code == 0, out
    [tests] = execution["checks"]
    assert tests["status"] == "passed"
    assert tests["tests"] == {
        "passed": 1, "failed": 0, "errors": 0, "skipped": 0, "failing": []
    }  # fmt: skip


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ('[tool.tars-bot.posargs]\ntests = "-x"\n', "[tool.tars-bot].posargs.tests"),
        ('deselect = "tests/test_app.py::test_known_bad"\n', "[tool.tars-bot].deselect"),
        ("deselect = [1]\n", "[tool.tars-bot].deselect[1]"),
    ],
)
def test_wrong_types_in_posargs_or_deselect_are_a_user_error(cli, make_repo, config, problem):
    repo = red_repo(make_repo, config)
    add_improvement(repo, four_steps(bad=None))
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 2
    assert problem in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("dtd", "junit.xml: it declares a DTD or entities"),
        ("oversized", "junit.xml: over the"),
        ("symlink", "junit.xml: not a regular file"),
    ],
)
def test_a_hostile_junit_report_is_refused_without_harm(cli, make_repo, kind, why):
    repo = red_repo(make_repo)
    git(repo, "rm", "-q", "-r", "tests")
    (repo / "hostile.py").write_text(HOSTILE.format(kind=kind))
    git(repo, "add", "hostile.py")
    git(repo, "commit", "-qm", "hostile")
    add_improvement(repo, four_steps(bad=None, final="hostile"))
    code, execution, out = execute(cli, repo)
    assert code == 0, out
    [check] = execution["checks"]
    assert check["status"] == "passed" and check["tests"] is None
    assert f"tars-bot: per-test results not used: {why}" in check["output"]


def test_without_a_junit_report_failures_are_compared_by_count(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, four_steps(bad=2, final="counted", on_failure="drop-step"))
    code, execution, out = execute(cli, repo)
    assert code == 0, out
    assert [s["state"] for s in execution["steps"]] == ["applied", "reverted", "applied", "applied"]
    [check] = execution["checks"]
    assert check["known_failures"] == [] and check["tests"]["failing"] is None
    assert "counted passed with 1 test already failing on the base (compared by count)" in out


def test_a_test_id_keeps_to_one_line_and_a_length():
    name = "x&#10;&#9;" + "y" * 1000
    report = tests_results.parse_junit(
        f'<testsuites><testsuite><testcase classname="t" name="{name}"><failure/></testcase>'
        '<testcase classname="t" name="ok"/><testcase classname="t" name="s"><skipped/>'
        "</testcase></testsuite></testsuites>".encode()
    )
    assert (report.failed, report.passed, report.skipped) == (1, 1, 1)
    [test] = report.failing or []
    assert test.startswith("t::x??y") and "\n" not in test and len(test) == tests_results.MAX_ID
    with pytest.raises(tests_results.BadReport):
        tests_results.parse_junit(b"<html/>")


def per_step(bad: int | None, check: str = "tests") -> str:
    """Four steps checked each by `check`, dropping what fails it."""
    text = four_steps(bad, final=check, on_failure="drop-step")
    return text.replace(f"validation: {{final: [{check}]}}", f"validation: {{per_step: [{check}]}}")


def test_a_per_step_session_failing_as_the_base_does_passes_each_step(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, per_step(bad=None))
    code, execution, _ = execute(cli, repo)
    assert code == 0, execution["failure_reason"]
    assert [s["state"] for s in execution["steps"]] == ["applied"] * 4
    for step in execution["steps"]:
        [check] = [c for c in step["checks"] if c["check"] == "tests"]
        assert check["known_failures"] == [KNOWN] and check["passed"]


def test_a_per_step_session_blames_the_step_that_adds_failures(cli, make_repo):
    repo = red_repo(make_repo)
    add_improvement(repo, per_step(bad=3))
    code, execution, _ = execute(cli, repo)
    assert code == 0, execution["failure_reason"]
    assert [s["state"] for s in execution["steps"]] == ["applied", "applied", "reverted", "applied"]
    assert "tests failed (4 failed, 1 passed)" in execution["steps"][2]["reason"]
    assert git(repo, "show", "tars-bot/imp:data/s4.txt") == "ok"


def test_a_per_step_session_that_fails_the_base_uncomparably_judges_no_step(cli, make_repo):
    """`lint` fails on the base with no tests to compare: it cannot tell what a step did."""
    repo = red_repo(make_repo)
    add_improvement(repo, per_step(bad=None, check="lint"))
    code, execution, _ = execute(cli, repo)
    assert code == 0, execution["failure_reason"]
    assert [s["state"] for s in execution["steps"]] == ["applied"] * 4
    [check] = [c for c in execution["steps"][0]["checks"] if c["check"] == "lint"]
    assert check["status"] == "error" and "fails on the base too" in check["summary"]
