"""Text an improvement controls, made safe to show on one line of the terminal."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from tars_bot.ui import untrusted


def shown(text: str) -> str:
    """Improvement text or output as one line inside rich markup: no escape sequence, no markup
    of its own."""
    return escape(untrusted.for_terminal(text, one_line=True))


def plain(text: str) -> str:
    """Improvement text or output as one line of a `Text` (which reads no markup)."""
    return untrusted.for_terminal(text, one_line=True)


# the colour of each state, wherever it is shown
STATE_STYLE = {
    "applied": "green",
    "succeeded": "green",
    "merged": "green",
    "closed": "dim",
    "skipped": "yellow",
    "reverted": "yellow",
    "unvalidated": "yellow",
    "failed": "red",
    "rolled_back": "red",
    "interrupted": "red",
    "running": "cyan",
    "validating": "cyan",
    "pending": "dim",
    "parked": "magenta",
    "expired": "yellow",
}


# wide enough that nothing piped is cut; not the width of anything drawn across it (rules)
PIPE_WIDTH = 10_000


def console(wide: bool = False, file: TextIO | None = None) -> Console:
    """The console for stdout (or `file`). `wide`: what it prints is a table, which a pipe or a
    file gets whole, never cut at 80 columns or wrapped mid-word. Colour follows rich: only on
    a terminal, never with NO_COLOR set, always with FORCE_COLOR set."""
    width = PIPE_WIDTH if wide and not _isatty(file or sys.stdout) else None
    return Console(file=file, highlight=False, soft_wrap=True, width=width)


def _isatty(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream: not a terminal
        return False


# the first that starts a line gives its colour, as `git diff --color` gives them
_DIFF_STYLES = (("diff ", "bold"), ("index ", "bold"), ("+++", "bold"), ("---", "bold"),
                ("@@", "cyan"), ("+", "green"), ("-", "red"))  # fmt: skip


def diff_text(diff: str) -> Text:
    """A diff an improvement made, its text made safe first, coloured line by line."""
    text = Text()
    lines = untrusted.for_terminal(diff).split("\n")
    for number, line in enumerate(lines):
        style = next((style for start, style in _DIFF_STYLES if line.startswith(start)), "")
        text.append(line, style)
        if number < len(lines) - 1:
            text.append("\n")
    return text
