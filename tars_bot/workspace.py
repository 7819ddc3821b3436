"""Safe Execution Environment: worktrees, step processes under limits, and change monitoring."""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import functools
import os
import posixpath
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tars_bot import faults, journal
from tars_bot.actions import Files, TreeFiles
from tars_bot.errors import TarsError
from tars_bot.git import NewContent, Repo, Worktree
from tars_bot.models import Limits
from tars_bot.paths import PathProblem, Scope

ENV_ALLOWLIST = ("PATH", "LANG", "LANGUAGE", "LC_*", "TERM", "TZ", "USER", "LOGNAME", "SHELL")
SECRET_PATTERNS = ("*_TOKEN", "*_SECRET", "*_KEY", "*_PASSWORD", "GITHUB_TOKEN")
KILL_GRACE_S = 5
OUTPUT_KEEP = 64 * 1024  # bytes kept from each end of a step's output


@dataclass
class _Held:
    worktree: Worktree
    name: str
    slot: tuple[str, str] | None  # (pool slot lock ref, lock commit) for a pooled worktree


class Workspace:
    """Where one execution's steps happen: in memory, on a commit's tree, until a step needs
    files on disk; then in a worktree of its own under the git dir.

    Worktrees come from a pool kept per repository (reset to the new commit, untracked and
    ignored files removed, so nothing leaks from one execution to the next), or are made fresh
    and removed at the end when the pool is busy. Each step becomes a commit; the branch (None
    for a dry run) follows by compare-and-swap.
    """

    def __init__(
        self, repo: Repo, execution_id: str, base: str, branch: str | None, pool_size: int = 2
    ) -> None:
        self.repo, self.execution_id, self.head = repo, execution_id, base
        self.branch_ref = f"refs/heads/{branch}" if branch else None
        self.pool_size = pool_size
        self.worktree: Worktree | None = None
        self._held: list[_Held] = []

    def __enter__(self) -> Workspace:
        if self.branch_ref and not self.repo.create_ref(self.branch_ref, self.head):
            raise TarsError(f"branch {self.branch_ref.removeprefix('refs/heads/')} already exists")
        return self

    def __exit__(self, *exc: object) -> None:
        for held in self._held:
            if held.slot is None:
                self.repo.remove_worktree(held.name, held.worktree.path)
            else:
                held.worktree.detach()
                self.repo.update_ref(held.slot[0], None, held.slot[1])

    def checkout(self) -> Worktree:
        """The execution's worktree, at the head, on the branch; made on first use."""
        if self.worktree is None:
            self.worktree = self._acquire("main", self.branch_ref, self.head)
            faults.point("after-worktree-add")
        return self.worktree

    def extra_checkout(self, label: str, commit: str) -> Worktree:
        """Another detached checkout for this execution (e.g. of the base, to compare)."""
        return self._acquire(label, None, commit)

    def _acquire(self, label: str, ref: str | None, commit: str) -> Worktree:
        for n in range(self.pool_size):
            slot = f"{journal.POOL}{n}"
            lock = journal.try_hold(self.repo, slot, f"{self.execution_id}+{label}")
            if lock is not None:
                try:
                    worktree = _reuse(self.repo, n, ref, commit)
                except BaseException:
                    self.repo.update_ref(slot, None, lock)
                    raise
                self._held.append(_Held(worktree, f"pool-{n}", (slot, lock)))
                return worktree
        name = self.execution_id if label == "main" else f"{self.execution_id}+{label}"
        worktree = self.repo.add_worktree(worktree_path(self.repo, name), ref, commit)
        self._held.append(_Held(worktree, name, None))
        return worktree

    def files(self) -> Files:
        if self.worktree is None:
            return TreeFiles(self.repo, self.repo.tree_of(self.head))
        return WorktreeFiles(self.worktree.path)

    def stage(self, changes: dict[str, NewContent]) -> tuple[str, int] | None:
        """The tree holding `changes` on top of the head, and its changed lines; None if equal."""
        head_tree = self.repo.tree_of(self.head)
        tree = self.repo.build_tree(head_tree, changes)
        return None if tree == head_tree else (tree, self.repo.changed_lines(head_tree, tree))

    def commit(self, tree: str, paths: list[str], message: str) -> str:
        commit = self.repo.create_commit(tree, [self.head], message)
        faults.point("after-step-commit")
        if self.branch_ref:
            self.repo.update_ref(self.branch_ref, commit, self.head)
        if self.worktree is not None:
            self.worktree.moved_to(commit, paths, detached=self.branch_ref is None)
        self.head = commit
        return commit


def worktree_path(repo: Repo, name: str) -> Path:
    """Where tars-bot's worktree `name` lives: under the git dir, invisible to `git status`."""
    return repo.git_dir / "tars-bot" / "worktrees" / name


def _reuse(repo: Repo, n: int, ref: str | None, commit: str) -> Worktree:
    """Pool slot n's worktree, reset to `commit`; made (again) when missing or broken."""
    path = worktree_path(repo, f"pool-{n}")
    if path.name in repo.worktree_names() and (worktree := repo.open_worktree(path)):
        worktree.reset_to(commit, ref)
        return worktree
    repo.remove_worktree(path.name, path)
    return repo.add_worktree(path, ref, commit)


def clear_pool(repo: Repo) -> list[str]:
    """Remove the pooled worktrees no live execution holds (for `recover`)."""
    removed = []
    for name in sorted(repo.worktree_names()):
        if name.startswith("pool-") and repo.ref(f"{journal.POOL}{name[5:]}") is None:
            repo.remove_worktree(name, worktree_path(repo, name))
            removed.append(name)
    return removed


def step_environment(pass_env: list[str], extra: dict[str, str], home: Path) -> dict[str, str]:
    """The parent's environment reduced to an allowlist; secrets only when named exactly."""

    def allowed(name: str) -> bool:
        if name in pass_env:
            return True
        if any(fnmatch.fnmatchcase(name, p) for p in SECRET_PATTERNS):
            return False
        return any(fnmatch.fnmatchcase(name, p) for p in (*ENV_ALLOWLIST, *pass_env))

    env = {name: value for name, value in os.environ.items() if allowed(name)}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), **extra)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return env


@functools.cache
def network_isolation_available() -> bool:
    """Whether `unshare` can give a process its own, empty network namespace here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = [unshare, "--net", "--map-root-user", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    timed_out: bool
    duration_s: float
    peak_memory_mb: float
    cpu_s: float
    output: bytes  # head and tail when longer than 2 x OUTPUT_KEEP
    network: str


class _Output:
    """Keeps the head and tail of a stream, passing each chunk on as it comes."""

    def __init__(self, on_output: Callable[[bytes], None] | None) -> None:
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = self.total = 0
        self.on_output = on_output

    def feed(self, stream: object) -> None:
        for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):  # type: ignore[attr-defined]
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


def run_process(
    command: str | list[str],
    cwd: Path,
    env: dict[str, str],
    limits: Limits,
    *,
    allow_network: bool = False,
    on_output: Callable[[bytes], None] | None = None,
) -> ProcessResult:
    """Run a shell command (or an argv list) in its own process group under the limits; never
    raises for the command's own failure."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    network = "allowed"
    if not allow_network:
        network = "isolated" if network_isolation_available() else "unavailable"
        if network == "isolated":
            argv = ["unshare", "--net", "--map-root-user", *argv]
    memory = limits.memory_mb * 1024 * 1024

    def apply_limits() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=apply_limits,  # only setrlimit, which takes no locks: safe with threads
    )
    output = _Output(on_output)
    reader = threading.Thread(target=output.feed, args=(proc.stdout,), daemon=True)
    reader.start()
    waited: list[tuple[int, int, resource.struct_rusage]] = []
    # wait4 rather than Popen.wait: it also returns the child's peak memory and CPU time.
    waiter = threading.Thread(target=lambda: waited.append(os.wait4(proc.pid, 0)), daemon=True)
    waiter.start()
    try:
        waiter.join(limits.step_timeout)
    except BaseException:  # Ctrl-C or a signal: the step's whole process group goes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    timed_out = waiter.is_alive()
    if timed_out:
        for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            waiter.join(grace)
            if not waiter.is_alive():
                break
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # no stragglers keep the worktree busy
    reader.join()
    proc.stdout.close()  # type: ignore[union-attr]
    proc.returncode = 0  # reaped by wait4 above; keep Popen from waiting again
    _, status, usage = waited[0]
    return ProcessResult(
        exit_code=os.waitstatus_to_exitcode(status),
        timed_out=timed_out,
        duration_s=round(time.monotonic() - start, 3),
        peak_memory_mb=round(usage.ru_maxrss / 1024, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        output=output.text(),
        network=network,
    )


class WorktreeFiles:
    """The `Files` view of a worktree: refuses to read or write through symbolic links."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _target(self, path: str) -> Path:
        current = self.root
        for part in path.split("/")[:-1]:
            current = current / part
            if current.is_symlink():
                raise PathProblem(f"{path}: {current.relative_to(self.root)} is a symbolic link")
        target = self.root / path
        if target.is_symlink():
            raise PathProblem(f"{path} is a symbolic link")
        return target

    def read(self, path: str) -> bytes | None:
        target = self._target(path)
        if target.is_dir():
            raise PathProblem(f"{path} is a directory")
        return target.read_bytes() if target.exists() else None

    def write(self, path: str, data: bytes, executable: bool | None) -> None:
        target = self._target(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if executable is not None:
            target.chmod(0o755 if executable else 0o644)

    def delete(self, path: str) -> None:
        self._target(path).unlink()

    def changes(self, paths: list[str]) -> dict[str, NewContent]:
        """What `paths` now hold on disk."""
        changes = {}
        for path in paths:
            target = self.root / path
            if target.is_symlink():
                changes[path] = NewContent(os.fsencode(target.readlink()), "symlink")
            elif target.is_file():
                executable = bool(target.stat().st_mode & 0o111)
                changes[path] = NewContent(
                    target.read_bytes(), "executable" if executable else "file"
                )
            else:
                changes[path] = NewContent(None)
        return changes


@dataclass(frozen=True)
class Policy:
    scope: Scope
    protected: Scope
    max_file_bytes: int


def anomaly(changes: dict[str, NewContent], policy: Policy) -> str | None:
    """Why these changes may not be committed, or None when they may."""
    for path, change in changes.items():
        if path.split("/")[0] == ".git" or "/.git/" in f"/{path}":
            return f"wrote into .git: {path}"
        if not policy.scope.covers(path):
            return f"changed {path}, outside its scope ({', '.join(policy.scope.patterns)})"
        if policy.protected.covers(path):
            return f"changed {path}, a protected path"
        if change.data is None:
            continue
        if change.mode == "symlink":
            target = os.fsdecode(change.data)
            inside = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if posixpath.isabs(target) or inside.split("/")[0] in ("..", ".git"):
                return f"{path} is a symbolic link leaving the worktree (to {target})"
        elif len(change.data) > policy.max_file_bytes:
            size_mb = len(change.data) / 1e6
            return f"{path} is {size_mb:.1f} MB, over the {policy.max_file_bytes / 1e6:g} MB limit"
    return None


class GitDirGuard:
    """Notices a step that wrote into git's own files: the worktree's `.git` link, the
    repository's config or hooks."""

    def __init__(self, worktree: Path, git_dir: Path) -> None:
        self._watched = [worktree / ".git", git_dir / "config", git_dir / "hooks"]
        self._before = self._state()

    def _state(self) -> list[object]:
        state: list[object] = []
        for path in self._watched:
            if path.is_dir() and not path.is_symlink():
                state.append(sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir()))
            else:
                state.append(path.read_bytes() if path.is_file() else None)
        return state

    def tampered(self) -> str | None:
        after = self._state()
        for path, old, new in zip(self._watched, self._before, after, strict=True):
            if old != new:
                return f"wrote into .git: {path.name}"
        return None


@contextlib.contextmanager
def step_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tars-bot-step-") as home:
        yield Path(home)
