"""Text an improvement controls, made safe to show on one line of the terminal."""

from __future__ import annotations

from rich.markup import escape

from tars_bot.ui import untrusted


def shown(text: str) -> str:
    """Improvement text or output as one line inside rich markup: no escape sequence, no markup
    of its own."""
    return escape(untrusted.for_terminal(text, one_line=True))


def plain(text: str) -> str:
    """Improvement text or output as one line of a `Text` (which reads no markup)."""
    return untrusted.for_terminal(text, one_line=True)
