"""What a sandboxed process sees: an allow-list of mounts, each with the reason it is there.

The view starts from an empty root and adds, read-only, the system's directories, a few files of
/etc, and the exact directories of the tools the process needs (the interpreter's prefixes, the
`PATH` entries, tars-bot's import path), resolved to real paths; then fresh, size-capped tmpfs for
/tmp, HOME, /run and /dev/shm; then what the job needs: a worktree read-write, a git dir made for
that worktree, nox's environments under a throwaway overlay. Nothing that contains the user's
checkout, HOME or the repository's git dir is ever added, so what was not thought of stays out.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# what programs read from /etc to start, resolve names and trust certificates; nothing with
# credentials (gitconfig, pip.conf, netrc, shadow, ssl/private). The sandbox sees a copy, made
# once per process: one mount rather than one per file, which is most of bubblewrap's cost.
ETC = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "gai.conf", "resolv.conf",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives",
    "os-release", "mime.types", "protocols", "services", "locale.alias", "locale.conf",
    "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "pki/tls/certs", "pki/ca-trust",
    "crypto-policies", "python3*",
)  # fmt: skip
RUN = Path("/run/tars-bot")  # inside: what tars-bot hands in and takes out
INPUTS, OUTPUTS, GIT = RUN / "in", RUN / "out", RUN / "git"
HOME = Path("/tmp/home")  # inside: in /tmp's fresh, capped tmpfs
SHM_MB = 64

Kind = Literal["ro", "rw", "tmpfs", "dir", "symlink", "overlay", "proc", "dev", "remount-ro"]


@dataclass(frozen=True)
class Mount:
    kind: Kind
    dest: str
    why: str
    source: str = ""
    size_mb: int | None = None  # tmpfs only

    def bwrap_args(self) -> list[str]:
        if self.kind == "tmpfs":
            size = ["--size", str(self.size_mb * 2**20)] if self.size_mb else []
            return [*size, "--tmpfs", self.dest]
        flag = {
            "ro": "--ro-bind", "rw": "--bind", "symlink": "--symlink",
            "overlay": "--overlay-src", "proc": "--proc", "dev": "--dev",
            "remount-ro": "--remount-ro", "dir": "--dir",
        }[self.kind]  # fmt: skip
        if self.kind in ("proc", "dev", "remount-ro", "dir"):
            return [flag, self.dest]
        if self.kind == "overlay":  # the source read-only below, a tmpfs layer for writes above
            return [flag, self.source, "--tmp-overlay", self.dest]
        return [flag, self.source, self.dest]


@dataclass(frozen=True)
class View:
    """The mounts in the order bubblewrap makes them, what was left out and why, the cwd."""

    mounts: list[Mount]
    left_out: list[str]
    cwd: str

    def bwrap_args(self) -> list[str]:
        # last: the root (bubblewrap's own tmpfs, uncapped) read-only, once every mount point
        # in it was made
        mounts = [*self.mounts, ROOT_READ_ONLY]
        return [*(a for m in mounts for a in m.bwrap_args()), "--chdir", self.cwd]


@dataclass(frozen=True)
class Protected:
    """What the view never shows, nor anything that contains it."""

    checkout: Path | None
    git_dir: Path | None

    def refuses(self, path: Path) -> str | None:
        """Why `path` (real) may not be bound, or None."""
        home = real(Path.home())
        if path == Path("/") or path == home:
            return "a parent folder of everything under it"
        for name, secret in (("checkout", self.checkout), ("git dir", self.git_dir)):
            if secret is not None and real(secret).is_relative_to(path):
                return f"contains the user's {name}"
        if home.is_relative_to(path):
            return "contains HOME"
        return None


NOTHING = Protected(None, None)
ROOT_READ_ONLY = Mount("remount-ro", "/", "the root: nothing but the mounts above")


def real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


@functools.cache
def base(memory_mb: int, network: bool) -> tuple[Mount, ...]:
    """The system: read-only directories and a copy of /etc's harmless files, fresh /proc and
    /dev, and tmpfs for /tmp (HOME is in it) and /dev/shm; /run is empty: no host sockets."""
    mounts = [Mount("proc", "/proc", "this sandbox's own processes"),
              Mount("dev", "/dev", "null, zero, random, tty: no host devices")]  # fmt: skip
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():
            mounts.append(Mount("symlink", name, "as on the host", str(path.readlink())))
        elif path.is_dir():
            mounts.append(Mount("ro", name, "system programs and libraries", name))
    etc = _etc_copy(network)
    listed = ", ".join(sorted(p.name for p in etc.iterdir()))
    return (
        *mounts,
        Mount("ro", "/etc", f"a copy of {listed}", str(etc)),
        Mount("tmpfs", "/tmp", "fresh scratch space; HOME is /tmp/home", size_mb=memory_mb),
        Mount("dir", str(HOME), "HOME, empty"),
        Mount("symlink", "/var/tmp", "the same fresh scratch space", "/tmp"),
        Mount("tmpfs", "/dev/shm", "fresh shared memory", size_mb=max(SHM_MB, memory_mb // 4)),
    )


@functools.cache
def _etc_copy(network: bool) -> Path:
    """The files of /etc a process may read, copied once per tars-bot process (links to
    files followed: /etc/resolv.conf may point into /run, which the sandbox does not show)."""
    copy = Path(tempfile.mkdtemp(prefix="tars-bot-etc-"))
    copy.chmod(0o755)
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for pattern in ETC:
        for found in Path("/etc").glob(pattern):
            if found.name == "resolv.conf" and not network:
                continue
            target = copy / found.relative_to("/etc")
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # unreadable here: then not there either
                if found.is_dir():
                    shutil.copytree(found, target, symlinks=True, ignore_dangling_symlinks=True)
                else:
                    shutil.copyfile(found, target)
    return copy


@functools.cache
def tool_dirs(
    protected: Protected, path_variable: str, scripts: str = ""
) -> tuple[tuple[Mount, ...], tuple[str, ...]]:
    """The exact directories of the tools a process may start: the interpreter's prefixes, the
    `PATH` entries and tars-bot's import path, as real paths; (mounts, why others were left
    out). A directory under the checkout is added only inside the interpreter's prefix (a
    `.venv` in the checkout). `scripts`: tars-bot's own, last on PATH."""
    prefixes = [real(sys.prefix), real(sys.base_prefix), real(sys.executable).parent]
    wanted = [(p, "the Python that runs nox and ruff") for p in prefixes]
    if scripts:  # its own mount when no prefix covers it, so its reason shows
        own = "tars-bot's scripts (ruff, nox), last on PATH"
        wanted.insert(0, (Path(scripts), own))
    for entry in path_variable.split(os.pathsep):
        if entry and entry != scripts:
            wanted.append((Path(entry), "on PATH"))
    wanted += [(Path(p), "on tars-bot's import path") for p in sys.path if p]
    chosen: list[Path] = []
    mounts, skipped = [], []
    for path, why in wanted:
        if not path.is_absolute():
            skipped.append(f"{path}: a relative PATH entry")
            continue
        resolved = real(path)
        if not resolved.is_dir() or _covered(resolved, [*map(Path, SYSTEM), *chosen]):
            continue
        in_prefix = any(resolved.is_relative_to(p) for p in prefixes)
        checkout = protected.checkout and real(protected.checkout)
        if checkout and resolved.is_relative_to(checkout) and not in_prefix:
            skipped.append(f"{resolved}: inside the user's checkout")
            continue
        if reason := protected.refuses(resolved):
            skipped.append(f"{resolved}: {reason}")
            continue
        chosen.append(resolved)
        mounts.append(Mount("ro", str(resolved), why, str(resolved)))
    return tuple(mounts), tuple(skipped)


def extra_dirs(paths: Iterable[str], protected: Protected) -> tuple[list[Mount], list[str]]:
    """Directories the repository's `sandbox_paths` adds, read-only, with the same refusals."""
    mounts, skipped = [], []
    for entry in paths:
        resolved = real(Path(entry).expanduser())
        if reason := protected.refuses(resolved):
            skipped.append(f"{resolved}: {reason}")
        elif resolved.exists():
            mounts.append(Mount("ro", str(resolved), "sandbox_paths", str(resolved)))
    return mounts, skipped


def git_dir(worktree: Path, own: Path, link: Path, objects: list[Path]) -> list[Mount]:
    """A git dir made for the worktree (read-write, thrown away with the run), the objects it
    reads through alternates (read-only), and the worktree's `.git` link pointed at it."""
    mounts = [Mount("rw", str(GIT), "a git dir for this worktree only: HEAD, index", str(own))]
    mounts += [Mount("ro", str(p), "git objects, read-only", str(p)) for p in objects]
    dot_git = str(real(worktree) / ".git")
    return [*mounts, Mount("ro", dot_git, "points git at its own git dir", str(link))]


def ordered(mounts: list[Mount]) -> list[Mount]:
    """Parents before children, whatever the layout: a mount point inside a tmpfs or a bind
    must be made after it (a stable sort by depth keeps equal depths in the order given)."""
    return sorted(mounts, key=lambda m: len(Path(m.dest).parts))


def _covered(path: Path, by: list[Path]) -> bool:
    return any(path.is_relative_to(b) for b in by)
