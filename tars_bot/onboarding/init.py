"""`tars-bot init`: write the configuration, an example improvement and the workflow into the
working tree, then say what to set on GitHub. The one command that writes to the user's checkout:
it never touches HEAD, the index or a branch, and never replaces a file it did not write (unless
forced)."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tars_bot.config import Config, parse_config
from tars_bot.errors import TarsError
from tars_bot.git import Repo
from tars_bot.onboarding import workflow
from tars_bot.planning.noxfile import declared_sessions

if TYPE_CHECKING:
    from tars_bot.validation.validator import NoxSessions

FORMAT = 1  # the version of `init --format json`'s document
EXAMPLE_ID = "example"
LINT_WORDS = frozenset(
    {
        "lint",
        "ruff",
        "flake8",
        "pylint",
        "style",
        "format",
        "typecheck",
        "mypy",
        "pyright",
        "types",
        "typing",
    }
)
TEST_WORDS = frozenset({"tests", "test", "pytest", "unit"})
# hook runners that fetch their hooks over the network when they run, which a sandboxed check
# cannot (and throws the hooks away after each run): never picked to check each step
NETWORK_RUNNERS = frozenset({"pre-commit", "prek"})
# the `-python` nox appends to a session made for several: -3.11, -3.14t, -pypy-3.11, -pypy3.10
_VARIANT = re.compile(r"-(?:\d+(?:\.\d+)*t?|pypy-?\d+(?:\.\d+)*)$")

Action = Literal["created", "appended", "replaced", "unchanged", "kept"]


@dataclass(frozen=True)
class FileResult:
    path: str
    action: Action
    note: str = ""


@dataclass(frozen=True)
class Sessions:
    """The nox sessions found, and which check each step (per_step) and the result (final)."""

    found: list[str] | None  # None: the noxfile declares them in a way only nox can tell
    per_step: list[str] = field(default_factory=list)
    final: list[str] = field(default_factory=list)
    passed_over: dict[str, str] = field(default_factory=dict)  # lint-like, not picked: why


@dataclass(frozen=True)
class InitResult:
    files: list[FileResult]
    sessions: Sessions
    settings: list[str]
    next_commands: list[str]

    def to_json(self) -> str:
        document = {"format": FORMAT, **asdict(self)}
        return json.dumps(document, indent=2)


@dataclass(frozen=True)
class _Planned:
    """A file as init would leave it: `text` None when it keeps what is there."""

    path: str
    text: str | None
    action: Action
    note: str = ""


def init(path: Path | str, action_ref: str | None = None, force: bool = False) -> InitResult:
    """Set the repository at `path` up; refuses (naming them) to replace files that differ."""
    workdir = Repo(path).workdir
    action = action_ref or workflow.default_action()
    if problem := workflow.uses_problem(action):
        raise TarsError(f"--action-ref: {problem}")
    pyproject = _read(workdir / "pyproject.toml")
    config = parse_config(pyproject, "pyproject.toml")
    sessions = find_sessions(workdir, config)
    watched = workflow.other_workflow_names(workdir)
    planned = [
        _config_file(pyproject, sessions, watched),
        _whole_file(workdir, example_path(config), example_text(config)),
        _whole_file(
            workdir, workflow.WORKFLOW_PATH, _workflow_text(workdir, config, action, watched)
        ),
    ]
    _refuse(workdir, planned, force)
    for plan in planned:
        if plan.text is not None and plan.action != "unchanged":
            target = workdir / plan.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(plan.text, encoding="utf-8")
    files = [FileResult(p.path, p.action, p.note) for p in planned]
    return InitResult(files, sessions, settings(action), next_commands(config))


def _refuse(workdir: Path, planned: list[_Planned], force: bool) -> None:
    """Before anything is written: every file init must not write, named."""
    problems = [
        f"{p.path}: exists and differs from what init writes; --force replaces it"
        for p in planned
        if p.action == "replaced" and not force
    ]
    problems += [
        f"{p.path}: a symbolic link, or outside the working tree; init writes neither"
        for p in planned
        if p.text is not None and p.action != "unchanged" and not _writable(workdir, p.path)
    ]
    if problems:
        raise TarsError(*problems)


def _writable(workdir: Path, name: str) -> bool:
    """Never through a link, nor outside the tree (an `improvements_dir` of "../x" or "/x")."""
    target = workdir / name
    inside = target.parent.resolve().is_relative_to(workdir.resolve())
    return inside and not target.is_symlink()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TarsError(f"{path.name}: cannot read: {e.strerror}") from None


def find_sessions(workdir: Path, config: Config) -> Sessions:
    """The noxfile's sessions, read without running it, or listed by nox in the sandbox where
    only running it tells: lint-like ones check each step, test-like ones the result."""
    source = _read(workdir / "noxfile.py")
    if source is None:
        return Sessions(found=[])
    text = source.decode("utf-8", errors="replace")
    found = declared_sessions(text)
    if found is None:
        found = _listed_by_nox(workdir, config)
    if found is None:
        return Sessions(found=None)
    lint = _named(found, LINT_WORDS)
    fetching = _running_hooks(text)
    passed_over = {
        s: f"runs {fetching[s]}, which fetches its hooks over the network as it runs"
        for s in lint
        if s in fetching
    }
    return Sessions(
        found=found,
        per_step=[s for s in lint if s not in passed_over],
        final=_named(found, TEST_WORDS),
        passed_over=passed_over,
    )


def _listed_by_nox(workdir: Path, config: Config) -> list[str] | None:
    """The sessions `nox --list` gives; a session made for several pythons by the one running
    tars-bot (`tests-3.11`), as there is no other here."""
    listed = listed_by_nox(workdir, config)
    if listed is None:
        return None
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    names = listed.names
    bases = [n for n in sorted(names) if not (_VARIANT.search(n) and _VARIANT.sub("", n) in names)]
    return [f"{b}-{python}" if f"{b}-{python}" in names else b for b in bases]


def listed_by_nox(workdir: Path, config: Config) -> NoxSessions | None:
    """The sessions `nox --list` gives for HEAD's noxfile, in the sandbox. None where the
    sandbox cannot run here, or HEAD has another noxfile than the working tree."""
    from tars_bot.execution.sandbox import open_sandbox  # a process: only where needed
    from tars_bot.validation.validator import NOXFILE, list_sessions

    repo = Repo(workdir)
    try:
        tree = repo.resolve("HEAD")[1]
        if repo.read(tree, NOXFILE) != _read(workdir / NOXFILE):
            return None
        return list_sessions(repo, tree, open_sandbox(config, repo))
    except TarsError:  # no commit yet, no sandbox here, or nox could not list them
        return None


def _running_hooks(source: str) -> dict[str, str]:
    """Session functions (by function and by `name=`) whose body names a hook runner that
    fetches its hooks when it runs, e.g. `session.run("pre-commit", "run", "--all-files")`."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:  # declared_sessions parsed it already
        if not isinstance(node, ast.FunctionDef):
            continue
        words = {
            c.value
            for c in ast.walk(node)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        }
        runner = next((r for r in sorted(NETWORK_RUNNERS) if r in words), None)
        if runner is None:
            continue
        names = {node.name}
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call):
                names |= {
                    k.value.value
                    for k in decorator.keywords
                    if k.arg == "name"
                    and isinstance(k.value, ast.Constant)
                    and isinstance(k.value.value, str)
                }
        found |= dict.fromkeys(names, runner)
    return found


def _named(sessions: list[str], words: frozenset[str]) -> list[str]:
    """The sessions named by one of `words` (`tests`, `tests-3.11`), or where there is none,
    those whose name holds one (`unit_tests`): not every variant a CI matrix spells out."""
    exact = [s for s in sessions if _VARIANT.sub("", s).lower() in words]
    return exact or [s for s in sessions if _words(s) & words]


def _words(session: str) -> set[str]:
    return set(session.lower().replace("-", "_").split("_"))


def has_table(pyproject: bytes | None) -> bool:
    if pyproject is None:
        return False
    document = tomllib.loads(pyproject.decode("utf-8"))  # parse_config read it already
    return "tars-bot" in document.get("tool", {})


def config_table(sessions: Sessions, watched: list[str]) -> str:
    """`[tool.tars-bot]` as init appends it (TOML text: no writer needed)."""
    if sessions.found is None:
        said = "# noxfile.py makes its sessions in a way only nox can tell: name them below.\n"
    elif not sessions.found:
        said = "# no nox sessions found: add a noxfile.py and name its sessions below.\n"
    else:
        said = f"# nox sessions found: {', '.join(sessions.found)}.\n"
        said += "".join(
            f"# not per_step: {name} {why}; tars-bot's own ruff check runs on each step.\n"
            for name, why in sessions.passed_over.items()
        )
    return (
        "[tool.tars-bot]\n"
        "# Written by `tars-bot init`; every key is in tars-bot's README (Configuration).\n"
        + said
        + "# per_step: run after each step (fast: lint, types); final: on the result (tests).\n"
        f"validation = {{ per_step = {_toml_list(sessions.per_step)}, "
        f"final = {_toml_list(sessions.final)} }}\n"
        f"# watch_workflows = {_toml_list(watched or list(workflow.DEFAULT_WORKFLOWS))}"
        "  # report CI failing where a change landed\n"
    )


def _toml_list(names: list[str]) -> str:
    return "[" + ", ".join(json.dumps(n) for n in names) + "]"  # JSON strings are TOML strings


def _config_file(pyproject: bytes | None, sessions: Sessions, watched: list[str]) -> _Planned:
    table = config_table(sessions, watched)
    if pyproject is None:
        return _Planned("pyproject.toml", table, "created")
    if has_table(pyproject):
        return _Planned("pyproject.toml", None, "kept", "[tool.tars-bot] is there: left as it is")
    text = pyproject.decode("utf-8")
    separator = "\n" if text.endswith("\n") or not text else "\n\n"
    return _Planned("pyproject.toml", text + separator + table, "appended")


def _whole_file(workdir: Path, path: str, text: str) -> _Planned:
    existing = _read(workdir / path)
    if existing is None:
        return _Planned(path, text, "created")
    if existing == text.encode("utf-8"):
        return _Planned(path, text, "unchanged")
    return _Planned(path, text, "replaced")


def example_path(config: Config) -> str:
    return f"{config.improvements_dir.strip('/')}/{EXAMPLE_ID}.yaml"


def example_text(config: Config) -> str:
    text = resources.files(__package__).joinpath("example.yaml").read_text(encoding="utf-8")
    return text.replace("@IMPROVEMENTS@", config.improvements_dir.strip("/"))


def _workflow_text(workdir: Path, config: Config, action: str, watched: list[str]) -> str:
    return workflow.render(action, watched, _default_branch(workdir), config.improvements_dir)


def _default_branch(workdir: Path) -> str:
    repo = Repo(workdir)
    for name in ("main", "master"):
        if repo.ref(f"refs/remotes/origin/{name}") or repo.ref(f"refs/heads/{name}"):
            return name
    return "main"


def settings(action: str) -> list[str]:
    """What to set on GitHub, in the order to do it."""
    owner = action.split("/")[0] if not action.startswith(".") else "your"
    pinned = (
        []
        if re.fullmatch(r"[^@]+@[0-9a-f]{40}", action)
        else [
            f"The workflow uses {action}, which can be moved: pin a commit (zizmor's "
            "unpinned-uses), OWNER/REPO@SHA in its three tars-bot steps (or --action-ref)"
        ]
    )
    return [
        *pinned,
        "Settings > Actions > General > Actions permissions: allow actions from GitHub and "
        f"from {owner} (the tars-bot action), or all actions",
        'Settings > Actions > General > Workflow permissions: tick "Allow GitHub Actions to '
        'create and approve pull requests" (off by default); the default token may stay '
        "read-only: each job asks for what it needs (issues, pull requests, contents, checks)",
        "Optional, for CI on tars-bot's pull requests (GitHub starts no workflow for a pull "
        "request opened with GITHUB_TOKEN): Settings > Secrets and variables > Actions, add "
        "TARS_BOT_TOKEN, a GitHub App installation token or a fine-grained token with Contents, "
        "Issues and Pull requests read and write on this repository. No other secret is needed",
        "Settings > Branches: protect the default branch (pull requests with review, your CI "
        "required); leave tars-bot/* unprotected so an improvement executed again can replace "
        "its branch",
    ]


def next_commands(config: Config) -> list[str]:
    return [
        f"git add pyproject.toml {config.improvements_dir.strip('/')} {workflow.WORKFLOW_PATH} "
        "&& git commit -m 'Set up tars-bot'   (tars-bot reads committed files)",
        "tars-bot init --check",
        f"tars-bot check {example_path(config)}",
        f"tars-bot plan --improvement-id {EXAMPLE_ID}",
        f"tars-bot execute --improvement-id {EXAMPLE_ID} --dry-run",
        f"tars-bot execute --improvement-id {EXAMPLE_ID} --open-pr   (with GITHUB_TOKEN and "
        "GITHUB_REPOSITORY set), or on GitHub: run the tars-bot workflow with improvement-id "
        f"{EXAMPLE_ID}, or comment /tars-bot execute on an issue holding an improvement",
    ]
