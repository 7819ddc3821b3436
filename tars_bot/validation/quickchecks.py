"""Checks on the Python files a step changed: byte-compilation, and ruff where the repo uses it.

ruff runs in the step's worktree, where the files live with the project's real configuration and
package layout, on the changed files only. A finding counts against the step only when the
parent commit's version of the file did not have it already (same file, rule and message), so a
step is never failed for code it did not touch.
"""

from __future__ import annotations

import collections
import json
import os
import re
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tars_bot.execution.processes import ProcessResult
from tars_bot.execution.sandbox import Jail, Sandbox
from tars_bot.git import Repo, Worktree
from tars_bot.models import CheckResult
from tars_bot.validation import ruffs

RUFF_TIMEOUT_S = 300
_LINE = re.compile(r"\bline \d+")
RUFF_MEMORY_MB = 2048


@dataclass(frozen=True)
class Change:
    """What a step changed: its commit's tree and its parent's, and the changed paths."""

    tree: str
    parent_tree: str
    paths: list[str]


def uses_ruff(repo: Repo, tree: str) -> bool:
    """Whether the repository, at `tree`, configures ruff."""
    if repo.blob_id(tree, "ruff.toml") or repo.blob_id(tree, ".ruff.toml"):
        return True
    pyproject = repo.read(tree, "pyproject.toml")
    try:
        return pyproject is not None and "ruff" in tomllib.loads(pyproject.decode()).get("tool", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False


def _compile(tree: str, files: dict[str, bytes]) -> CheckResult:
    start = time.monotonic()
    errors = []
    for path, source in files.items():
        try:
            compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as e:
            line = getattr(e, "lineno", None)
            errors.append(f"{path}{f':{line}' if line else ''}: {getattr(e, 'msg', e)}")
    return _result("compile", tree, start, errors, "")


def _result(
    check: str, tree: str, start: float, found: list[str], error: str, used: str = ""
) -> CheckResult:
    """`used`: which tool ran (ruff's version and where it came from), said in the detail."""
    status = "error" if error else ("failed" if found else "passed")
    output = error or "\n".join(found)
    summary = (error or (found[0] if found else "")).splitlines()[0] if output else used
    return CheckResult(
        check=check,
        status=status,
        tree=tree,
        duration_s=round(time.monotonic() - start, 3),
        summary=summary,
        output="\n".join(filter(None, [output[-4000:], used])),
    )


class _Ruff:
    """ruff on files of a worktree, and on their parent versions given through stdin."""

    def __init__(self, sandbox: Sandbox, worktree: Worktree, chosen: ruffs.Ruff) -> None:
        # ruff names files by their real path, as the sandbox shows it
        self.sandbox, self.root = sandbox, Path(os.path.realpath(worktree.path))
        self.chosen = chosen
        # reads only: nothing is writable; the project's nox environment sealed, if its ruff
        self.jail = Jail(cwd=worktree.path, overlays=(chosen.envdir,) if chosen.envdir else ())

    def run(self, args: list[str], stdin: bytes | None = None) -> ProcessResult:
        command = [self.chosen.path, *args, "--no-cache", "--force-exclude"]
        return self.sandbox.run(command, self.jail, RUFF_TIMEOUT_S, RUFF_MEMORY_MB, stdin=stdin)

    def findings(self, paths: list[str], stdin: bytes | None = None) -> list[tuple[str, ...]]:
        """(path, line:col, code, message) of each finding; the path given for stdin input."""
        where = ["--stdin-filename", paths[0], "-"] if stdin is not None else paths
        proc = self.run(["check", "--no-fix", "--output-format", "json", *where], stdin)
        if proc.exit_code not in (0, 1):
            raise _RuffError(proc.output.decode(errors="replace").strip())
        text = proc.output.decode(errors="replace")
        start = 0 if text.startswith("[") else text.find("\n[") + 1  # after any warnings
        found: list[tuple[str, ...]] = []
        for item in json.loads(text[start:]):
            path = Path(item["filename"]).relative_to(self.root).as_posix()
            where_in = f"{item['location']['row']}:{item['location']['column']}"
            found.append((path, where_in, str(item["code"]), item["message"]))
        return found

    def unformatted(self, paths: list[str], stdin: bytes | None = None) -> list[str]:
        where = ["--stdin-filename", paths[0], "-"] if stdin is not None else paths
        proc = self.run(["format", "--check", *where], stdin)
        if proc.exit_code not in (0, 1):
            raise _RuffError(proc.output.decode(errors="replace").strip())
        if proc.exit_code == 0:
            return []
        if len(paths) == 1:
            return paths
        # which ones: ruff's way of naming them changes between versions, its exit code not
        return [p for p in paths if self.unformatted([p])]


class _RuffError(Exception):
    """ruff could not check (a broken configuration, say): says nothing of the step."""


def _new_findings(ruff: _Ruff, repo: Repo, change: Change, paths: list[str]) -> list[str]:
    found = ruff.findings(paths)
    if not found:
        return []
    before: collections.Counter[tuple[str, ...]] = collections.Counter()
    for path in sorted({f[0] for f in found}):
        if (old := repo.read(change.parent_tree, path)) is not None:
            before.update(_key(*f) for f in ruff.findings([path], old))
    new = []
    for path, where, code, message in found:
        if before[key := _key(path, where, code, message)] > 0:
            before[key] -= 1
        else:
            new.append(f"{path}:{where}: {code} {message}")
    return new


def _key(path: str, where: str, code: str, message: str) -> tuple[str, ...]:
    """A finding, wherever the step moved it: messages name lines too ("from line 7")."""
    return path, code, _LINE.sub("line N", message)


def _newly_unformatted(ruff: _Ruff, repo: Repo, change: Change, paths: list[str]) -> list[str]:
    return [
        f"{path}: would be reformatted by ruff format"
        for path in ruff.unformatted(paths)
        if (old := repo.read(change.parent_tree, path)) is None or not ruff.unformatted([path], old)
    ]


def quick_checks(
    sandbox: Sandbox,
    repo: Repo,
    change: Change,
    worktree: Worktree | None,
    enabled: Sequence[str],
) -> list[CheckResult]:
    """compile, and `ruff check` / `ruff format --check` when configured, on changed .py files;
    `worktree` holds the step's commit (needed for ruff only)."""
    files = {
        p: data for p in change.paths if p.endswith(".py") and (data := repo.read(change.tree, p))
    }
    if not files:
        return []
    results = [_compile(change.tree, files)] if "compile" in enabled else []
    if "ruff" not in enabled or worktree is None or not uses_ruff(repo, change.tree):
        return results
    chosen = ruffs.choose(sandbox, repo, change.tree, worktree.path)
    ruff = _Ruff(sandbox, worktree, chosen)
    used = f"ran {chosen.detail}"
    for check, find in (("ruff check", _new_findings), ("ruff format", _newly_unformatted)):
        start = time.monotonic()
        try:
            found = find(ruff, repo, change, sorted(files))
            results.append(_result(check, change.tree, start, found, "", used))
        except _RuffError as e:
            error = f"ruff could not run: {e}"
            results.append(_result(check, change.tree, start, [], error, used))
    return results


def needs_worktree(repo: Repo, tree: str, paths: list[str], enabled: Sequence[str]) -> bool:
    """Whether the quick checks of a step need its files on disk."""
    python = any(p.endswith(".py") for p in paths)
    return python and "ruff" in enabled and uses_ruff(repo, tree)
