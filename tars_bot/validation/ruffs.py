"""Which ruff the quick checks run: the project's, where it has one installed, else tars-bot's own.

The project's ruff is the one in a nox environment tars-bot built (sealed, from the base's
dependency files) for the tree's dependencies, a session named like `lint` first; when the
project pins a version (`astral-sh/ruff-pre-commit` in `.pre-commit-config.yaml`, or
`ruff==X` in the noxfile), an environment holding that version is chosen. Nothing is installed
at check time: a pinned version found nowhere falls back to tars-bot's ruff, and the check's
detail says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tars_bot.execution.sandbox import Jail, Sandbox, ruff_binary
from tars_bot.execution.workspace import ENVS
from tars_bot.git import Repo
from tars_bot.validation.validator import dependency_key

_PRE_COMMIT = ".pre-commit-config.yaml"
_NOX_PIN = re.compile(r"""["']ruff==([0-9][0-9A-Za-z.+-]*)["']""")
_VERSION = re.compile(rb"\bruff (\d[\w.+-]*)")
VERSION_TIMEOUT_S = 30
VERSION_MEMORY_MB = 256


@dataclass(frozen=True)
class Ruff:
    """The ruff to run, by absolute path, and what to say about it."""

    path: str
    envdir: Path | None  # the nox environment it lives in, shown to the sandbox read-only
    detail: str  # e.g. "ruff 0.4.1 from the nox environment of session lint"


def pinned(repo: Repo, tree: str) -> tuple[str, str] | None:
    """The ruff version the project pins at `tree`, and where: (version, file)."""
    data = repo.read(tree, _PRE_COMMIT)
    if data is not None:
        try:
            config = yaml.safe_load(data)
        except yaml.YAMLError:
            config = None
        repos = config.get("repos", []) if isinstance(config, dict) else []
        for entry in repos if isinstance(repos, list) else []:
            if isinstance(entry, dict) and "astral-sh/ruff-pre-commit" in str(entry.get("repo")):
                return str(entry.get("rev", "")).removeprefix("v"), _PRE_COMMIT
    noxfile = repo.read(tree, "noxfile.py")
    if noxfile is not None and (found := _NOX_PIN.search(noxfile.decode(errors="replace"))):
        return found.group(1), "noxfile.py"
    return None


def installed(repo: Repo, tree: str) -> list[tuple[str, Path]]:
    """(session, environment) of each sealed nox environment for `tree`'s dependencies that
    holds a ruff, sessions named like `lint` first."""
    key = dependency_key(repo, tree)
    envs = repo.git_dir / ENVS / key
    if not any(envs.parent.glob(f"{key}.*")):  # no environment of this set finished building
        return []
    found = [(p.parent.parent.name, p.parent.parent) for p in envs.glob("*/bin/ruff")]
    return sorted(found, key=lambda f: ("lint" not in f[0], f[0]))


_versions: dict[tuple[str, int, int], str | None] = {}  # by binary: one run per process


def version_of(sandbox: Sandbox, path: str, envdir: Path | None, cwd: Path) -> str | None:
    """What `ruff --version` says, asked in the sandbox (it may be the project's binary)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _versions:
        jail = Jail(cwd=cwd, overlays=(envdir,) if envdir else ())
        proc = sandbox.run([path, "--version"], jail, VERSION_TIMEOUT_S, VERSION_MEMORY_MB)
        found = _VERSION.search(proc.output) if proc.exit_code == 0 else None
        _versions[key] = found.group(1).decode() if found else None
    return _versions[key]


def choose(sandbox: Sandbox, repo: Repo, tree: str, cwd: Path) -> Ruff:
    """The project's ruff (its pinned version where it pins one), else tars-bot's own."""
    pin = pinned(repo, tree)
    for session, envdir in installed(repo, tree):
        path = str(envdir / "bin" / "ruff")
        version = version_of(sandbox, path, envdir, cwd)
        if version is not None and (pin is None or pin[0] == version):
            where = f" (pinned in {pin[1]})" if pin else ""
            return Ruff(path, envdir, f"ruff {version}{where} from nox session {session}'s env")
    own = ruff_binary()
    version = version_of(sandbox, own, None, cwd) or "of unknown version"
    if pin is None:
        return Ruff(own, None, f"tars-bot's own ruff {version}")
    if pin[0] == version:
        return Ruff(own, None, f"ruff {version}, as pinned in {pin[1]} (tars-bot's own)")
    return Ruff(
        own,
        None,
        f"tars-bot's own ruff {version}: ruff {pin[0]}, pinned in {pin[1]}, is not installed "
        "in any nox environment tars-bot built",
    )
