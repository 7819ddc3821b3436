"""A started process and everything it starts: timed, measured (memory sampled over the whole
tree), its output kept head and tail, and killed together; for the sandbox module, which decides
what the process may see."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

OUTPUT_KEEP = 64 * 1024  # bytes kept from each end of a process's output
MEMORY_SAMPLE_S = 0.1
INFO_FD = "{info-fd}"  # replaced by the pipe bwrap reports its sandbox's pid on
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
_PR_SET_PDEATHSIG = 1
KILL_WAIT_S = 5  # how long a killed process tree may take to go
PIPE_DRAIN_S = 2  # unsandboxed: how long a leftover process may hold the output pipe open


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


class Output:
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


class Process:
    """One started process and everything it starts: timed, measured, killed together."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        *,
        sandboxed: bool,
        network: bool,
        max_file_mb: float | None,
        on_output: Callable[[bytes], None] | None,
    ) -> None:
        self.argv, self.cwd, self.env, self.sandboxed = argv, cwd, env, sandboxed
        self.max_file_mb = max_file_mb
        self.output = Output(on_output)
        self.peak_rss = 0
        self.memory_exceeded = False
        self.network = "allowed" if network else "isolated"
        if not sandboxed and not network:
            self.network = "isolated" if _unshare_net_works() else "unavailable"
            if self.network == "isolated":
                self.argv = ["unshare", "--net", "--map-root-user", *argv]

    def wait(self, timeout_s: float, memory_mb: int, stdin: bytes | None) -> ProcessResult:
        memory = memory_mb * 1024 * 1024
        info_read, info_write = os.pipe()
        out_read, out_write = os.pipe()
        start = time.monotonic()
        try:
            proc = self._start(memory, stdin, out_write, info_write)
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
        waited, waiter = _reap_in_background(proc.pid)
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
        return self._result(waited[0], timed_out, start)

    def _start(
        self, memory: int, stdin: bytes | None, out_write: int, info_write: int
    ) -> subprocess.Popen[bytes]:
        fsize = int(self.max_file_mb * 1e6) if self.max_file_mb else None
        argv = [str(info_write) if arg == INFO_FD else arg for arg in self.argv]
        return subprocess.Popen(
            argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out_write,
            stderr=out_write,
            start_new_session=True,
            pass_fds=(info_write,) if self.sandboxed else (),
            # system calls only, no locks: safe with threads
            preexec_fn=_child_limits(memory, fsize),
        )

    def _result(self, waited: _Waited, timed_out: bool, start: float) -> ProcessResult:
        _, status, usage = waited
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
    root = os.path.realpath(under) + "/"
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


_Waited = tuple[int, int, resource.struct_rusage]


def _child_limits(memory: int, fsize: int | None) -> Callable[[], None]:
    """What the child runs between fork and exec: its limits, and death with tars-bot."""
    parent = os.getpid()

    def apply_limits() -> None:  # in the child between fork and exec: no locks taken
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        # dies with tars-bot, even killed before bwrap's own --die-with-parent takes hold
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return apply_limits


def _reap_in_background(pid: int) -> tuple[list[_Waited], threading.Thread]:
    """A thread that waits for `pid` to end; what it found, once it has, and the thread."""
    waited: list[_Waited] = []
    # wait4 rather than Popen.wait: it also returns the peak memory and CPU time
    waiter = threading.Thread(target=lambda: waited.append(os.wait4(pid, 0)), daemon=True)
    waiter.start()
    return waited, waiter
