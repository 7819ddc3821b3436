"""Checks on the Python files a step changed: byte-compilation, and ruff where the repo uses it.

They need no checkout: the changed files and the repository's root configuration are written to
a scratch directory, so their cost follows the size of the step, not of the repository.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from tars_bot.git import Repo
from tars_bot.models import CheckResult

RUFF_CONFIGS = ("pyproject.toml", "ruff.toml", ".ruff.toml")


def _uses_ruff(repo: Repo, tree: str) -> bool:
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
    return CheckResult(
        check="compile",
        status="failed" if errors else "passed",
        tree=tree,
        duration_s=round(time.monotonic() - start, 3),
        summary=errors[0] if errors else "",
        output="\n".join(errors),
    )


def _ruff(tree: str, root: Path, paths: list[str], check: str) -> CheckResult:
    args = ["check", "--no-fix", "--quiet"] if check == "ruff check" else ["format", "--check"]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", *paths],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = (proc.stdout + proc.stderr).strip()
    status = "passed" if proc.returncode == 0 else ("failed" if proc.returncode == 1 else "error")
    return CheckResult(
        check=check,
        status=status,
        tree=tree,
        duration_s=round(time.monotonic() - start, 3),
        summary=output.splitlines()[-1] if output and status != "passed" else "",
        output=output[-4000:],
    )


def quick_checks(repo: Repo, tree: str, changed: list[str]) -> list[CheckResult]:
    """compile, and `ruff check` / `ruff format --check` when configured, on changed .py files."""
    files = {p: data for p in changed if p.endswith(".py") and (data := repo.read(tree, p))}
    if not files:
        return []
    results = [_compile(tree, files)]
    if not _uses_ruff(repo, tree):
        return results
    with tempfile.TemporaryDirectory(prefix="tars-bot-ruff-") as scratch:
        root = Path(scratch)
        for name in RUFF_CONFIGS:
            if (config := repo.read(tree, name)) is not None:
                (root / name).write_bytes(config)
        for path, data in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        results += [
            _ruff(tree, root, sorted(files), check) for check in ("ruff check", "ruff format")
        ]
    return results
