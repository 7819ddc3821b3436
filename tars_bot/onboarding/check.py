"""`tars-bot init --check`: the whole set-up validated without writing anything, every problem
reported (as Renovate's config validator does), one line each. Nothing runs but `nox --list` in
the sandbox, and only for a noxfile that makes its sessions in a way only running it tells."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tars_bot.config import Config, parse_config
from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.models import Improvement
from tars_bot.onboarding import init, workflow
from tars_bot.planning.loader import SUFFIXES, load_improvement
from tars_bot.planning.noxfile import read_sessions


@dataclass(frozen=True)
class CheckResult:
    problems: list[str]
    checked: list[str]  # what was looked at, for the "ok" summary


def check(path: Path | str) -> CheckResult:
    workdir = Repo(path).workdir
    problems: list[str] = []
    checked: list[str] = []
    config = _config(workdir, problems)
    known = _known_sessions(workdir, config, checked)
    if config is not None:
        checked.append("pyproject.toml [tool.tars-bot]")
        problems += _session_problems(
            "pyproject.toml: [tool.tars-bot].validation",
            config.validation.per_step + config.validation.final,
            known,
        )
        improvements_dir = config.improvements_dir
    else:
        improvements_dir = Config().improvements_dir
    for file, improvement in _improvements(workdir, improvements_dir, problems, checked):
        if improvement.validation is not None:
            names = improvement.validation.per_step + improvement.validation.final
            problems += _session_problems(f"{file}: validation", names, known)
    problems += _workflow_problems(workdir, checked)
    return CheckResult(problems, checked)


def _config(workdir: Path, problems: list[str]) -> Config | None:
    try:
        pyproject = (workdir / "pyproject.toml").read_bytes()
    except FileNotFoundError:
        problems.append("pyproject.toml: not found; `tars-bot init` writes [tool.tars-bot]")
        return None
    try:
        return parse_config(pyproject, "pyproject.toml")
    except TarsError as e:
        problems += e.problems
        return None


def _known_sessions(workdir: Path, config: Config | None, checked: list[str]) -> set[str] | None:
    """Every name a session list may use (base and long names, tag:NAME), read statically or,
    where only running the noxfile tells, listed by nox in the sandbox; None when neither can."""
    try:
        source = (workdir / "noxfile.py").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return set()
    found = read_sessions(source)
    if found is None:
        listed = init.listed_by_nox(workdir, config or Config())
        if listed is None:
            checked.append("noxfile.py (sessions made dynamically: names not checked)")
            return None
        checked.append(f"noxfile.py ({len(listed.names)} sessions, listed by nox)")
        return set(listed.names) | {f"tag:{t}" for t in listed.tags}
    checked.append(f"noxfile.py ({len(found)} sessions)")
    names = {d.name for d in found} | {n for d in found for n in d.long_names()}
    return names | {f"tag:{t}" for d in found for t in d.tags}


def _session_problems(where: str, names: list[str], known: set[str] | None) -> list[str]:
    if known is None:
        return []
    missing = [n for n in dict.fromkeys(names) if n not in known]
    have = ", ".join(sorted(known)) or "none: there is no noxfile.py"
    return [f"{where}: nox session {n!r} is not in noxfile.py (sessions: {have})" for n in missing]


def _improvements(
    workdir: Path, improvements_dir: str, problems: list[str], checked: list[str]
) -> list[tuple[str, Improvement]]:
    folder = workdir / improvements_dir
    loaded = []
    for file in sorted(p for p in folder.glob("*") if p.suffix in SUFFIXES):
        display = file.relative_to(workdir).as_posix()
        try:
            loaded.append((display, load_improvement(file, display)))
        except TarsError as e:
            problems += e.problems
    checked.append(f"{len(loaded)} improvement file(s) in {improvements_dir}")
    return loaded


def _workflow_problems(workdir: Path, checked: list[str]) -> list[str]:
    path = workdir / workflow.WORKFLOW_PATH
    if not path.is_file():
        return [f"{workflow.WORKFLOW_PATH}: not found; `tars-bot init` writes it"]
    try:
        document = workflow.load(path, workflow.WORKFLOW_PATH)
    except TarsError as e:
        return e.problems
    problems = [
        f"{workflow.WORKFLOW_PATH}: {where}: {problem}"
        for where, uses in workflow.references(document)
        if (problem := workflow.uses_problem(uses))
    ]
    existing = workflow.other_workflow_names(workdir)
    problems += [
        f"{workflow.WORKFLOW_PATH}: on.workflow_run.workflows: no workflow is named {name!r} "
        f"(workflows: {', '.join(existing) or 'none'})"
        for name in workflow.watched_names(document)
        if name not in existing
    ]
    checked.append(workflow.WORKFLOW_PATH)
    return problems
