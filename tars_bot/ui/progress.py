"""What an execution shows while it runs: a line per step, check and probe, and with --verbose
the raw output of each under a heading naming what printed it.

On an interactive terminal the lines are rich's spinners, updated in place. Anywhere else (a
pipe, a file, the GitHub Actions log) each event is one plain line, written and flushed as it
happens, so a log shows a long run as it goes and raw output below the line it belongs to."""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from typing import Protocol

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from tars_bot.models import CheckResult, PlannedStep, StepResult
from tars_bot.ui import untrusted, wording
from tars_bot.ui.terminal import STATE_STYLE, shown


class _Lines(Protocol):
    """How each event's line is shown: added when it starts, rewritten when it ends."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def add(self, label: str) -> TaskID: ...
    def done(self, task: TaskID, label: str, note: str, seconds: float | None) -> None: ...


class _Spinners:
    """An interactive terminal: one spinner a line, turned into the outcome when it ends."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def add(self, label: str) -> TaskID:
        return self.progress.add_task(label)

    def done(self, task: TaskID, label: str, note: str, seconds: float | None) -> None:
        self.progress.update(task, description=label + note, total=1, completed=1)


class _Plain:
    """No interactive terminal: a line when each event starts, another when it ends."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.count = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def add(self, label: str) -> TaskID:
        self.console.print(f"{label} [dim]started[/dim]")
        self.count += 1
        return TaskID(self.count)

    def done(self, task: TaskID, label: str, note: str, seconds: float | None) -> None:
        spent = f" ({wording.timespan(seconds)})" if seconds is not None else ""
        self.console.print(f"{label}{note}{spent}")


def interactive(console: Console, environ: Mapping[str, str]) -> bool:
    """Whether lines can be updated in place: a terminal, and not the Actions log (which
    FORCE_COLOR may make look like one)."""
    return console.is_interactive and environ.get("GITHUB_ACTIONS") != "true"


class LiveProgress:
    """One line per step, then one per check run during validation (the tip's, each bisection
    probe's): its start, then its outcome and time. Raw output of steps and checks is shown only
    when verbose, below a heading naming what printed it (a `::group::` in the GitHub Actions
    log), with its escape sequences made visible and its workflow commands stopped."""

    def __init__(
        self, console: Console, verbose: bool, environ: Mapping[str, str] | None = None
    ) -> None:
        self.console, self.verbose = console, verbose
        self.environ = os.environ if environ is None else environ
        self.actions = self.environ.get("GITHUB_ACTIONS") == "true"
        self.live = interactive(console, self.environ)
        self.lines: _Lines = _Spinners(console) if self.live else _Plain(console)
        self.step: int | None = None  # the step running now: its checks are the step's own
        self.tasks: dict[int, tuple[TaskID, str]] = {}
        self.validation: TaskID | None = None
        self.check: tuple[TaskID, str] | None = None
        self.heading: str | None = None  # shown above the output to come, if any comes
        self.under_heading = False  # output came: its end is marked too
        self.at_line_start = True  # where the output left the cursor
        self.resume = ""  # what starts workflow commands again after the output, if stopped
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __enter__(self) -> LiveProgress:
        self.lines.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_output()
        if self.validation is not None and self.live:
            self.lines.done(self.validation, "[bold]validation[/bold]", "", None)
        self.lines.stop()

    def _heading(self, title: str) -> None:
        self.heading, self.under_heading = title, False

    def _open_output(self) -> None:
        if self.heading is None:
            return
        title = shown(self.heading)
        if self.actions:  # ours, outside the stopped region: the runner folds the output
            self.console.out(f"::group::{untrusted.for_terminal(self.heading, one_line=True)}")
        elif self.live:
            self.console.rule(title, style="dim")
        else:
            self.console.print(f"[dim]--- {title}[/dim]")
        self.heading, self.under_heading = None, True

    def _close_output(self) -> None:
        rest = untrusted.for_terminal(self.decoder.decode(b"", final=True))
        self._write(rest)
        if not self.at_line_start:
            self._write("\n")
        if self.resume:
            self.console.out(self.resume.strip("\n"), highlight=False)
            self.resume = ""

    def _end(self, title: str) -> None:
        self._close_output()
        if self.under_heading:
            if self.actions:
                self.console.out("::endgroup::")
            elif self.live:
                self.console.rule(shown(title), style="dim")
        self.heading, self.under_heading = None, False

    def _write(self, text: str) -> None:
        if text:
            self.console.out(text, end="", highlight=False)
            self.at_line_start = text.endswith("\n")

    def step_started(self, step: PlannedStep) -> None:
        self.step = step.number
        label = f"{step.number}. {shown(step.name)}"
        self.tasks[step.number] = (self.lines.add(label), label)
        self._heading(f"output of step {step.number}. {step.name}")

    def step_finished(self, result: StepResult) -> None:
        self._end(f"step {result.number}: {wording.words(result.state)}")
        style = STATE_STYLE.get(result.state, "")
        note = f" [{style}]{shown(wording.state_text(result))}[/{style}]"
        if result.reason:
            note += f": {shown(result.reason)}"
        task, label = self.tasks[result.number]
        self.lines.done(task, label, note, None if self.live else result.duration_s)
        self.step = None

    def output(self, chunk: bytes) -> None:
        if not self.verbose:
            return
        self._open_output()
        if not self.resume:
            stopped = untrusted.stop_commands(self.environ)
            self._write(stopped.stop)
            self.resume = stopped.resume
        self._write(untrusted.for_terminal(self.decoder.decode(chunk)))

    def check_started(self, check: str, commit: str, step: int | None) -> None:
        if self.step is None and self.validation is None:
            self.validation = self.lines.add("[bold]validation[/bold]")
        indent = "   " if self.step is not None else "  "
        label = f"{indent}{shown(check)} on {wording.probe_where(commit, step)}"
        self.check = (self.lines.add(label), label)
        self._heading(f"nox session {check} on {wording.probe_where(commit, step)}")

    def check_finished(self, result: CheckResult) -> None:
        if self.check is None:
            return
        task, label = self.check
        style = {"passed": "green", "failed": "red"}.get(result.status, "yellow")
        verdict = "could not run" if result.status == "error" else result.status
        self._end(f"{result.check}: {verdict}")
        note = f" [{style}]{verdict}[/{style}]"
        note += f": {shown(result.summary)}" if result.summary else ""
        note += " (cached)" if result.cached else ""
        spent = None if self.live or result.cached else result.duration_s
        self.lines.done(task, label, note, spent)
        self.check = None
