"""An execution as a GitHub check run, `tars-bot / validation` on its branch's tip: conclusion,
title, the validation report, and annotations where failing output names a file and a line.

The failing output is the tail of each failed check: pytest's tracebacks and short summary
(`tests/test_x.py:12: AssertionError`, `path:12: in f`, `FAILED path::test - message`), ruff's
concise (`path:1:8: F401 ...`) and full (`--> path:1:8`) formats, compile errors, and any tool
that prints `path:line: message`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from tars_bot.models import CheckResult, Execution, ExecutionPlan
from tars_bot.ui import github_text, markdown
from tars_bot.ui.wording import is_dropped

NAME = "tars-bot / validation"
OUTPUT_LIMIT = 65_535  # characters in a check run's summary (GitHub's REST description)
MAX_ANNOTATIONS = 50  # per request
TITLE_LIMIT = 255  # characters in an annotation's title
CONCLUSIONS = {"succeeded": "success", "unvalidated": "neutral"}  # other states: failure
LEVELS = ("failure", "warning", "notice")  # most telling first: the first 50 are kept

Level = Literal["failure", "warning", "notice"]

_LOCATION = re.compile(r"^(?P<path>[^\s:]+):(?P<line>\d+):(?:\d+:)?(?: (?P<text>.*))?$")
_RUFF_FULL = re.compile(r"^\s*--> (?P<path>[^\s:]+):(?P<line>\d+):\d+$")  # below its message
_SECTION = re.compile(r"^_{3,} (?P<name>.+?) _{3,}$")  # pytest: one failing test's report
_BANNER = re.compile(r"^={3,} (?P<name>.+?) ={3,}$")  # pytest: "short test summary info", ...
_CAPTURED = re.compile(r"^-{3,} Captured .+ -{3,}$")  # a test's own output: nothing of pytest's
_ERROR = re.compile(r"^E(?: (?P<text>.*))?$")
_SUMMARY = re.compile(
    r"^(?:FAILED|ERROR) (?P<path>[^\s:]+)(?:::(?P<test>.+?))?(?: - (?P<message>.*))?$"
)


@dataclass(frozen=True)
class Finding:
    """A file and line that a tool's output names, and what it says of them."""

    path: str  # as printed
    line: int
    message: str
    title: str = ""
    level: Level = "failure"  # notice: a call on the way to the failure


@dataclass(frozen=True)
class Annotation:
    path: str  # relative to the repository's root
    line: int
    level: Level
    message: str
    title: str

    def as_json(self) -> dict[str, str | int]:
        """As GitHub's REST description has a check run's annotation."""
        return {
            "path": self.path,
            "start_line": self.line,
            "end_line": self.line,
            "annotation_level": self.level,
            "message": self.message,
            "title": self.title[:TITLE_LIMIT],
        }


@dataclass(frozen=True)
class CheckRun:
    head_sha: str
    conclusion: str
    title: str
    summary: str
    annotations: list[Annotation]
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def output(self) -> dict[str, Any]:
        annotations = [a.as_json() for a in self.annotations]
        return {"title": self.title, "summary": self.summary, "annotations": annotations}


def check_run(execution: Execution, plan: ExecutionPlan, exists: Callable[[str], bool]) -> CheckRun:
    """The check run of an execution whose branch tip is on GitHub; `exists`: whether a path is
    in the tip's tree."""
    assert execution.head_commit is not None, "a check run needs the branch's tip"
    found = failure_annotations(execution, exists)
    summary = markdown.validation_markdown(execution, plan)
    if (left_off := len(found) - MAX_ANNOTATIONS) > 0:
        summary += github_text.annotations_left_off(left_off, MAX_ANNOTATIONS)
    return CheckRun(
        head_sha=execution.head_commit,
        conclusion=conclusion(execution),
        title=github_text.check_title(execution),
        summary=fit(summary),
        annotations=found[:MAX_ANNOTATIONS],
        started_at=_time(execution.started_at),
        completed_at=_time(execution.finished_at),
    )


def conclusion(execution: Execution) -> str:
    """success only for checks that ran on this tip: after a step rollback, neutral."""
    found = CONCLUSIONS.get(execution.state, "failure")
    return "neutral" if found == "success" and execution.checks_stale else found


def report(execution: Execution, plan: ExecutionPlan) -> str:
    """The validation report as Markdown, within GitHub's limits (for a job summary)."""
    return fit(markdown.validation_markdown(execution, plan))


def fit(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """`text` cut at the end to `limit` characters, saying so."""
    if len(text) <= limit:
        return text
    note = github_text.cut_here(limit)
    return text[: limit - len(note)] + note


def failure_annotations(execution: Execution, exists: Callable[[str], bool]) -> list[Annotation]:
    """Where the output of the execution's failed checks names one of `files`: failures on the
    tip or in a failed step, warnings from the run of a culprit step that was dropped (it is no
    longer on the branch), notices for each call on the way. Most telling first."""
    found: dict[tuple[str, int, str], Annotation] = {}
    for result, step, dropped in _failed_runs(execution):
        for finding in findings(result.output):
            path = _in_repo(finding.path, exists)
            if path is None:
                continue
            annotation = _annotation(path, finding, result.check, step if dropped else None)
            found.setdefault((path, annotation.line, annotation.message), annotation)
    return sorted(found.values(), key=lambda a: LEVELS.index(a.level))


def _failed_runs(execution: Execution) -> Iterator[tuple[CheckResult, str, bool]]:
    """Each failed check's run: (result, its step as "step N \"name\"", dropped since)."""
    for step in execution.steps:
        for result in step.checks:
            if not result.passed:
                yield result, f'step {step.number} "{step.name}"', False
    for result in execution.checks:
        if not result.passed:
            yield result, "the tip", False
    names = {step.number: step.name for step in execution.steps}
    for culprit in execution.culprits:
        where = f'step {culprit.step} "{names.get(culprit.step or 0, "")}"'
        yield culprit.result, where, is_dropped(culprit, execution)


def _annotation(path: str, finding: Finding, check: str, dropped: str | None) -> Annotation:
    title = f"{check}: {finding.title}" if finding.title else check
    if dropped is None:
        return Annotation(path, finding.line, finding.level, finding.message or title, title)
    level: Level = "warning" if finding.level == "failure" else finding.level
    message = github_text.dropped_broke(dropped, check, finding.message)
    return Annotation(path, finding.line, level, message.strip(), f"{title} (dropped step)")


def _in_repo(path: str, exists: Callable[[str], bool]) -> str | None:
    """`path` relative to the repository's root when it names a file there, else None."""
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    name = relative.as_posix()  # without a leading ./
    return name if exists(name) else None


@dataclass
class _Test:
    """One failing test's report in pytest's output: its traceback's frames, its E lines."""

    name: str
    frames: list[tuple[str, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    captured: bool = False  # in its captured output, where no line is pytest's


def findings(output: str) -> list[Finding]:
    """The files and lines that a tool's failing output names, paths as printed."""
    tests: list[_Test] = []
    summaries: dict[str, tuple[str, str]] = {}  # test (dotted) -> (path, message)
    found: list[Finding] = []
    test: _Test | None = None
    level: Level = "failure"
    previous = ""
    for line in output.splitlines():
        if section := _SECTION.match(line):
            test = _Test(section["name"])
            tests.append(test)
        elif banner := _BANNER.match(line):
            test = None
            level = "warning" if banner["name"] == "warnings summary" else "failure"
        elif test is not None and (test.captured or _CAPTURED.match(line)):
            test.captured = True
        elif test is not None and (error := _ERROR.match(line)):
            test.errors.append(error["text"] or "")
        elif summary := _SUMMARY.match(line):
            name = (summary["test"] or summary["path"]).replace("::", ".")
            summaries[name] = (summary["path"], summary["message"] or "")
        elif arrow := _RUFF_FULL.match(line):
            found.append(Finding(arrow["path"], int(arrow["line"]), previous.strip(), level=level))
        elif where := _LOCATION.match(line):
            place = (where["path"], int(where["line"]), (where["text"] or "").strip())
            if test is not None:
                test.frames.append(place)
            else:
                found.append(Finding(*place, level=level))
        previous = line if line.strip() else previous
    return [*_test_findings(tests, summaries), *found]


def _test_findings(tests: list[_Test], summaries: dict[str, tuple[str, str]]) -> Iterator[Finding]:
    """Per failing test, the line where it failed and, as notices, the calls that led there;
    a test whose traceback the output no longer holds, at its file's first line."""
    for test in tests:
        if not test.frames:
            continue
        *calls, (path, line, text) = test.frames
        _, summary = summaries.pop(test.name, ("", ""))
        message = textwrap.dedent("\n".join(test.errors)).strip() or summary or text
        title = f"{test.name} failed"
        yield Finding(path, line, message, title)
        for call_path, call_line, _ in calls:
            yield Finding(call_path, call_line, f"{title} in a call from here", title, "notice")
    for name, (path, message) in summaries.items():
        yield Finding(path, 1, message or f"{name} failed", f"{name} failed")


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
