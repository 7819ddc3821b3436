"""At a terminal, a parked execution asks what to do: approve, reject, show the step's diff, or
leave it parked. Without a terminal nothing asks: the execution stays parked and the command
that continues it is printed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from rich.console import Console

Choice = Literal["approve", "reject", "diff", "quit"]
CHOICES: dict[str, Choice] = {"a": "approve", "r": "reject", "d": "diff", "q": "quit"}
QUESTION = "[a]pprove, [r]eject, [d]iff, [q]uit (it stays parked)? "


def ask(console: Console, read: Callable[[str], str] = input) -> Choice:
    """One choice, asked again until it is one of CHOICES; end of input is `quit`."""
    while True:
        try:
            answer = read(QUESTION).strip().lower()
        except EOFError:
            return "quit"
        if answer[:1] in CHOICES:
            return CHOICES[answer[:1]]
        console.print(f"{answer!r}: answer a, r, d or q", markup=False)
