"""Text an improvement controls (its title, step names, file names, what its processes print),
made safe for where it is shown: a terminal, the GitHub Actions log, GitHub Markdown. It is
shown as written, but it can neither act there (escape sequences, workflow commands) nor pass
for tars-bot's own (links, images, mentions, HTML, hidden markers)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

# C0 controls but newline and tab, DEL, C1 controls (a terminal reads 0x9b as CSI), and the
# bidirectional controls that make text read otherwise than it is (CVE-2021-42574)
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(f"[{_CONTROL}]")
_CONTROLS_AND_LINES = re.compile(f"[{_CONTROL}\n\t]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\x1b"}
# git's quoting of file names (core.quotePath): named escapes, octal bytes for the rest
_GIT_NAMED = {"\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r"}
_GIT_NAMED |= {'"': '"', "\\": "\\"}
_NEEDS_QUOTES = re.compile(f'[{_CONTROL}\n\t"\\\\]')

# Markdown: what could link, embed, mention, format or hide. `<`, `>` and `&` become
# entities (no tag, no comment, no entity of the text's own); `@` and `#N` get a zero-width
# space, so that no mention notifies and no reference links; the rest is backslash-escaped.
_MARKDOWN = re.compile(r"[\\`*_\[\]~|<>&@]|#(?=\d)")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "@": "@&#8203;", "#": "#&#8203;"}


def _visible(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def for_terminal(text: str, one_line: bool = False) -> str:
    """`text` with every control character shown (`\\x1b`, `\\r`, `\\u202e`...) instead of
    acting on the terminal: newlines and tabs are kept, unless `one_line`."""
    controls = _CONTROLS_AND_LINES if one_line else _CONTROLS
    return controls.sub(lambda m: _visible(m.group()), text.replace("\r\n", "\n"))


def path(name: str) -> str:
    """A file name on one line, quoted as git quotes it when it holds a control character, a
    quote or a backslash: `a\\nb` is shown `"a\\nb"`."""
    if not _NEEDS_QUOTES.search(name):
        return name
    escaped = "".join(_git_escape(char) for char in name)
    return f'"{escaped}"'


def _git_escape(char: str) -> str:
    if char in _GIT_NAMED:
        return "\\" + _GIT_NAMED[char]
    if _CONTROLS.match(char):
        return "".join(f"\\{byte:03o}" for byte in char.encode())
    return char


def for_markdown(text: str) -> str:
    """`text` as Markdown that GitHub shows as written, on one line (a table cell's too): no
    link, image, mention, reference, emphasis, HTML tag or comment renders from it."""
    one_line = for_terminal(text.replace("\r\n", "\n").replace("\n", " ").replace("\t", " "))
    return _MARKDOWN.sub(_markdown_escape, one_line)


def _markdown_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ENTITIES.get(char) or "\\" + char


def for_markdown_lines(text: str) -> str:
    """Several lines of `text` as Markdown shown as written (see `for_markdown`), paragraphs
    kept."""
    return "\n".join(for_markdown(line) for line in text.splitlines())


def code_span(text: str) -> str:
    """`text` as inline code on one line, which nothing in it can close (not for a table)."""
    shown = for_terminal(text, one_line=True)
    fence = "`" * max([1, *(len(run) + 1 for run in re.findall("`+", shown))])
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def code_block(text: str, info: str = "") -> str:
    """`text` in a fenced code block that nothing in it can close: the fence is longer than
    any run of backticks it holds."""
    runs = re.findall("`+", text)
    fence = "`" * max([3, *(len(run) + 1 for run in runs)])
    return f"{fence}{info}\n{for_terminal(text)}\n{fence}"


def without_comments(markdown: str) -> str:
    """Markdown from elsewhere, shown as it is but unable to hide a comment or a marker that
    could pass for tars-bot's."""
    return markdown.replace("<!--", "&lt;!--")


class StoppedCommands(NamedTuple):
    """The lines around untrusted output in the GitHub Actions log: the runner ignores the
    workflow commands (`::add-mask::`, `::error::`...) between them, for they are stopped with a
    token the output cannot know (GitHub's "Stopping and starting workflow commands"). Both
    empty outside Actions."""

    stop: str
    resume: str


def stop_commands(environ: Mapping[str, str]) -> StoppedCommands:
    if environ.get("GITHUB_ACTIONS") != "true":
        return StoppedCommands("", "")
    import secrets  # imported here: only in Actions, and every command imports this module

    token = secrets.token_hex(16)
    # the resume must start a line of its own, whatever the output ended with
    return StoppedCommands(f"::stop-commands::{token}\n", f"\n::{token}::\n")


@contextmanager
def no_workflow_commands(
    environ: Mapping[str, str], write: Callable[[str], object] | None = None
) -> Iterator[None]:
    """Untrusted output written (by `write`, stdout's by default) inside this block acts as
    no workflow command in the GitHub Actions log."""
    write = write or sys.stdout.write
    stopped = stop_commands(environ)
    write(stopped.stop)
    try:
        yield
    finally:
        write(stopped.resume)
