"""`tars-bot check`: improvement files checked as planning checks them (schema, paths, edits,
patches, session names) but without starting a process wherever the noxfile can be read
statically, so that it runs as a pre-commit hook on any machine. It imports only what checking
needs: a hook runs on every commit."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tars_bot.config import config_at
from tars_bot.errors import EXIT_FAILED, EXIT_OK, TarsError
from tars_bot.git import Repo
from tars_bot.planning import loader, planner, uncommitted
from tars_bot.ui import untrusted


@dataclass(frozen=True)
class FileResult:
    """One file checked: its problems, and what was said without being a problem."""

    path: str
    problems: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sessions: str = ""  # how the session names were known ("" when there was none to check)


def check_file(repo: Repo, path: Path) -> FileResult:
    display = _display(repo, path)
    try:
        improvement = loader.load_improvement(path, display)
        uncommitted.warn(repo, "HEAD", improvement)
        found = planner.check(repo, improvement, source=display)
    except TarsError as e:
        return FileResult(display, list(e.problems))
    return FileResult(display, found.problems, found.warnings, found.notes, found.sessions_from)


def run(repo_path: str, files: list[str], *, hook: bool, verbose: bool, as_json: bool) -> int:
    """Check `files`; with `hook`, only those in the configured improvements dir (pre-commit
    passes every file its pattern matches, and the pattern cannot read pyproject.toml)."""
    repo = Repo(repo_path)
    paths = [Path(name) for name in files]
    skipped: list[str] = []
    if hook:
        folder = PurePosixPath(config_at(repo).improvements_dir)
        skipped = [
            name for name, p in zip(files, paths, strict=True) if not _under(repo, p, folder)
        ]
        paths = [p for name, p in zip(files, paths, strict=True) if name not in skipped]
    results = [check_file(repo, path) for path in paths]
    if as_json:
        _print_json(results, skipped)
    else:
        _print_text(results, skipped, verbose)
    return EXIT_FAILED if any(r.problems for r in results) else EXIT_OK


def _under(repo: Repo, path: Path, folder: PurePosixPath) -> bool:
    """Whether `path` is an improvement file in `folder` (relative to the repository root)."""
    try:
        relative = PurePosixPath(path.resolve().relative_to(repo.workdir.resolve()).as_posix())
    except ValueError:
        return False
    return relative.is_relative_to(folder) and relative.suffix.lower() in loader.SUFFIXES


def _display(repo: Repo, path: Path) -> str:
    """`path` relative to the repository root when it lies inside, for messages."""
    try:
        return str(path.resolve().relative_to(repo.workdir.resolve()))
    except ValueError:
        return str(path)


def _print_text(results: list[FileResult], skipped: list[str], verbose: bool) -> None:
    for result in results:
        for problem in result.problems:
            print(untrusted.for_terminal(problem), file=sys.stderr)
        for note in result.notes:
            print(f"note: {untrusted.for_terminal(note)}", file=sys.stderr)
        if not verbose:
            continue
        for warning in result.warnings:
            print(f"warning: {untrusted.for_terminal(warning)}")
        verdict = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
        how = f" (sessions {result.sessions})" if result.sessions else ""
        print(f"{untrusted.for_terminal(result.path)}: {verdict}{how}")
    if verbose and skipped:
        print(f"skipped {len(skipped)} file(s) outside the improvements dir")


def _print_json(results: list[FileResult], skipped: list[str]) -> None:
    from tars_bot.models.output import Checked, CheckedFile  # only JSON needs the model

    files = [CheckedFile(**vars(r), ok=not r.problems) for r in results]
    print(Checked(files=files, skipped=skipped).model_dump_json(indent=2))
