"""The error users see, and the one place that turns errors into exit codes."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tars_bot.ui import untrusted
from tars_bot.version import __version__

if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
EXIT_TERMINATED = 143


class TarsError(Exception):
    """Something the user must fix. Each problem is one line naming where and why."""

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


class PlanError(TarsError):
    """An improvement that cannot be turned into a plan."""


class Terminated(BaseException):
    """SIGTERM: unwound like Ctrl-C, so an execution is rolled back and its processes stopped."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def log_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tars-bot" / "tars-bot.log"


def _write_crash_log(exc: BaseException) -> Path:
    import platform  # imported here: only a crash needs them, and every command imports this
    import traceback
    from datetime import UTC, datetime

    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(f"### {datetime.now(UTC).isoformat()} tars-bot {__version__}\n")
        log.write(f"python {sys.version.split()[0]} on {platform.platform()}\n")
        log.write(f"argv: {sys.argv}\n\n")
        log.write("".join(traceback.format_exception(exc)))
        log.write("\n")
    return path


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered then goes nowhere at exit, instead of
    failing again (Python's "Exception ignored ... BrokenPipeError")."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor, e.g. captured by tests
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a verb: its exit code, or the one for how it failed with at most a few readable lines.
    SIGTERM unwinds it like Ctrl-C while it runs."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    as_json = getattr(args, "format", None) == "json"
    try:
        code = command(args)
        sys.stdout.flush()  # a reader that left shows here, inside the handler
        return code
    except TarsError as e:
        _print_problems(e)
        return _failed(EXIT_USAGE, e.problems, as_json)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _failed(EXIT_INTERRUPTED, ["interrupted"], as_json)
    except Terminated:
        print("terminated", file=sys.stderr)
        return _failed(EXIT_TERMINATED, ["terminated"], as_json)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as `cat` would
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # the one broad catch: anything unexpected gets a log, not a traceback
        path = _write_crash_log(e)
        said = untrusted.for_terminal(f"{type(e).__name__}: {e}", one_line=True)
        print(f"internal error: {said} (traceback in {path})", file=sys.stderr)
        return _failed(EXIT_INTERNAL, [f"internal error: {said} (traceback in {path})"], as_json)
    finally:
        signal.signal(signal.SIGTERM, previous)


def warn(text: str) -> None:
    """One line on stderr for something the user should know that stops nothing."""
    with untrusted.no_workflow_commands(os.environ, sys.stderr.write):
        print(f"warning: {untrusted.for_terminal(text, one_line=True)}", file=sys.stderr)


def _print_problems(error: TarsError) -> None:
    # problems quote the improvement (file names, output): shown, never acting
    with untrusted.no_workflow_commands(os.environ, sys.stderr.write):
        for problem in error.problems:
            print(f"error: {untrusted.for_terminal(problem)}", file=sys.stderr)


def _failed(code: int, problems: list[str], as_json: bool) -> int:
    if as_json:
        print_json_error(code, problems)
    return code


def print_json_error(code: int, problems: list[str]) -> None:
    """With --format json, an error is JSON too, on stdout where the script reads the output
    it asked for (and told apart by its `format`); stderr says it for people as always."""
    from tars_bot.models.output import Error, Problems

    error = Error(error=Problems(exit_code=code, problems=problems))
    sys.stdout.write(error.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()
