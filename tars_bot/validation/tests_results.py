"""Per-test results of a check, and how a check's failures compare with the base's.

A session's pytest writes a JUnit XML report where tars-bot asks (PYTEST_ADDOPTS); the report
is untrusted (the tests under check wrote it, or could have), so it is read capped, refused with
a DTD or entity, and parsed by the standard library. Without one, the counts of pytest's summary
line are the fallback. A session that runs pytest twice leaves the last report: the run that
failed, since a failing command ends a nox session. A step is blamed for the failures it adds,
never for the base's own.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET

from tars_bot.models import CheckResult, TestReport

JUNIT = "junit.xml"
JUNIT_MAX_BYTES = 8 * 2**20
MAX_FAILING = 5000  # test ids kept per result; beyond, only counts are compared
MAX_ID = 300  # characters of a test id kept: ids are shown on one line
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DECLARATIONS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.I)
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped)\b")


class BadReport(ValueError):
    """A JUnit report tars-bot will not use: declarations, or not the XML pytest writes."""


def pytest_addopts(outer: str, junit: str, deselect: list[str]) -> str:
    """PYTEST_ADDOPTS for a check: the session's own options, then a JUnit report at `junit`
    (pytest keeps the last report a session writes) and the deselected tests."""
    ours = ["--junitxml", junit, "-o", "junit_family=xunit2"]
    ours += [arg for node in deselect for arg in ("--deselect", node)]
    return " ".join(filter(None, [outer, shlex.join(ours)]))


def parse_junit(data: bytes) -> TestReport:
    """The counts and failing tests of a JUnit XML report. Raises BadReport."""
    if _DECLARATIONS.search(data):  # entities could expand a few bytes into gigabytes
        raise BadReport("it declares a DTD or entities")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise BadReport(f"not XML: {e}") from None
    cases = root.iter("testcase") if root.tag in ("testsuites", "testsuite") else None
    if cases is None:
        raise BadReport(f"its root is <{root.tag[:40]}>, not <testsuites>")
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing: list[str] = []
    for case in cases:
        outcome = _outcome(case)
        counts[outcome] += 1
        if outcome in ("failed", "errors"):
            failing.append(_test_id(case))
    kept = sorted(set(failing)) if len(failing) <= MAX_FAILING else None
    return TestReport(**counts, failing=kept)


def _test_id(case: ET.Element) -> str:
    # the report is the tests' to write: an id keeps to one line, and to a length
    name = f"{case.get('classname', '')}::{case.get('name', '')}"
    return _UNPRINTABLE.sub("?", name)[:MAX_ID]


def _outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "failure" in tags:
        return "failed"
    if "error" in tags:
        return "errors"
    return "skipped" if "skipped" in tags else "passed"


def from_summary(summary: str) -> TestReport | None:
    """The counts of pytest's summary line (e.g. "1 failed, 5 passed"); None without one."""
    found = {"errors" if k.startswith("error") else k: int(n) for n, k in _COUNT.findall(summary)}
    return TestReport(**found) if found else None


def summary(report: TestReport) -> str:
    """The counts as pytest's summary line puts them, e.g. "1 failed, 5 passed"."""
    counts = [(report.failed, "failed"), (report.passed, "passed"), (report.skipped, "skipped")]
    counts.append((report.errors, "error" if report.errors == 1 else "errors"))
    return ", ".join(f"{n} {kind}" for n, kind in counts if n)


def explains(report: TestReport, status: str) -> bool:
    """Whether `report` tells why a check has `status`: no test failed where it passed, some
    did where it failed (a session may fail after its tests pass, in a later command)."""
    return (report.failed + report.errors > 0) == (status == "failed")


def failing(result: CheckResult) -> frozenset[str] | None:
    """The tests `result` fails, by id: none when it passed; None when not known (no report, too
    many to keep, or a failed session whose report shows no failing test: it failed elsewhere)."""
    if result.status == "passed":
        return frozenset()
    tests = result.tests
    if tests is None or tests.failing is None or not tests.failing:
        return None
    return frozenset(tests.failing)


def _failures(result: CheckResult) -> int | None:
    tests = result.tests
    count = tests.failed + tests.errors if tests else 0
    return count if result.status == "passed" or count else None


def adds_failures(result: CheckResult, base: CheckResult) -> bool | None:
    """Whether `result` fails a test that `base` (the same check on the base) does not: by test
    id, else by count; None when the two cannot be compared."""
    if result.status == "passed":
        return False
    if base.status == "passed":
        return True
    tests, known = failing(result), failing(base)
    if tests is not None and known is not None:
        return not tests <= known
    more, fewer = _failures(result), _failures(base)
    if more is None or fewer is None:
        return None
    return more > fewer


def new_failures(result: CheckResult, base: CheckResult) -> tuple[list[str], list[str]]:
    """(tests `result` fails that `base` does not, those both fail), where ids are known."""
    tests, known = failing(result) or frozenset(), failing(base) or frozenset()
    return sorted(tests - known), sorted(tests & known)


def with_known_failures(result: CheckResult, base: CheckResult) -> CheckResult:
    """`result`, failing only where the base fails: passed, its failures named as known."""
    return result.model_copy(update={"known_failures": sorted(failing(result) or ())})


def cannot_compare(result: CheckResult) -> str:
    """Why a failure on a red base is blamed on nobody, and what the user can do."""
    return (
        f"{result.describe()}, and it fails on the base too; without per-test results "
        f"(pytest's JUnit report) no step can be blamed: set `deselect` or `posargs` for "
        f"{result.check} in [tool.tars-bot], or fix the base"
    )
