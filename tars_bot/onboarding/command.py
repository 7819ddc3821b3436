"""The `init` verb's output: what was written, then the settings and commands, in order."""

from __future__ import annotations

import json
import sys

from tars_bot.errors import EXIT_OK, EXIT_USAGE
from tars_bot.onboarding import check, init
from tars_bot.ui import untrusted

SAID = {
    "created": "created",
    "appended": "added [tool.tars-bot] to",
    "replaced": "replaced",
    "unchanged": "unchanged",
    "kept": "kept",
}


def run(repo: str, action_ref: str | None, force: bool, only_check: bool, form: str) -> int:
    if only_check:
        return _check(repo, form)
    result = init.init(repo, action_ref, force)
    if form == "json":
        print(result.to_json())
        return EXIT_OK
    for file in result.files:
        note = f" ({file.note})" if file.note else ""
        print(f"{SAID[file.action]}: {file.path}{note}")
    for name, why in result.sessions.passed_over.items():
        print(f"not run on each step: nox session {name!r} {why}")
    if all(f.action in ("unchanged", "kept") for f in result.files):
        print("nothing to change: the repository is set up")
    print("\nOn GitHub, in this order:")
    for number, setting in enumerate(result.settings, start=1):
        print(f"  {number}. {setting}")
    print("\nThen:")
    for command in result.next_commands:
        print(f"  {command}")
    return EXIT_OK


def _check(repo: str, form: str) -> int:
    result = check.check(repo)
    code = EXIT_USAGE if result.problems else EXIT_OK
    if form == "json":
        document = {"format": init.FORMAT, "ok": not result.problems, **vars(result)}
        print(json.dumps(document, indent=2))
        return code
    for problem in result.problems:  # they quote the files: shown, never acting
        print(f"error: {untrusted.for_terminal(problem)}", file=sys.stderr)
    if result.problems:
        print(f"{len(result.problems)} problem(s)", file=sys.stderr)
    else:
        print(f"ok: {'; '.join(result.checked)}")
    return code
