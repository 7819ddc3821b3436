"""What a sandboxed process sees: an allow-list of mounts, each with the reason it is there.

The view starts from an empty root and adds, read-only, the system's directories, a few files of
/etc, and the exact directories of the tools the process needs (the interpreter's prefixes, the
`PATH` entries, tars-bot's import path), resolved to real paths; then fresh, size-capped tmpfs for
/tmp, HOME, /run and /dev/shm; then what the job needs: a worktree read-write, a git dir made for
that worktree, nox's environments under a throwaway overlay. Nothing that contains the user's
checkout, HOME or the repository's git dir is ever added, so what was not thought of stays out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# what programs read from /etc to start, resolve names and trust certificates; nothing with
# credentials (gitconfig, pip.conf, netrc) and no host sockets
ETC = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "gai.conf", "resolv.conf",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives",
    "os-release", "mime.types", "protocols", "services", "locale.alias", "locale.conf",
    "ssl", "ca-certificates", "pki", "crypto-policies", "python3*",
)  # fmt: skip
RUN = Path("/run/tars-bot")  # inside: what tars-bot hands in and takes out
INPUTS, OUTPUTS, GIT = RUN / "in", RUN / "out", RUN / "git"
SANDBOX_HOME = Path("/tmp/home")  # where the real HOME cannot stand in (e.g. HOME=/)
SMALL_TMPFS_MB = 64

Kind = Literal["ro", "rw", "tmpfs", "symlink", "overlay", "proc", "dev"]


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
        }[self.kind]  # fmt: skip
        if self.kind in ("proc", "dev"):
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
        return [*(a for m in self.mounts for a in m.bwrap_args()), "--chdir", self.cwd]


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


def real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def home_inside() -> Path:
    """HOME as the sandbox sees it: the real path, made an empty tmpfs, where that is safe."""
    home = real(Path.home())
    if home == Path("/") or any(home.is_relative_to(s) for s in SYSTEM) or len(home.parts) < 2:
        return SANDBOX_HOME
    return home


def base(memory_mb: int, network: bool) -> list[Mount]:
    """The system: read-only directories and /etc files, fresh /proc, /dev and tmpfs."""
    mounts = [Mount("proc", "/proc", "this sandbox's own processes"),
              Mount("dev", "/dev", "null, zero, random, tty: no host devices")]  # fmt: skip
    for name in SYSTEM:
        path = Path(name)
        if path.is_symlink():
            mounts.append(Mount("symlink", name, "as on the host", str(path.readlink())))
        elif path.is_dir():
            mounts.append(Mount("ro", name, "system programs and libraries", name))
    for pattern in ETC:
        for found in sorted(map(str, Path("/etc").glob(pattern))):
            if found == "/etc/resolv.conf" and not network:
                continue
            mounts.append(Mount("ro", found, "system configuration", str(real(found))))
    small = max(SMALL_TMPFS_MB, memory_mb // 4)
    mounts += [
        Mount("tmpfs", "/tmp", "fresh scratch space", size_mb=memory_mb),
        Mount("tmpfs", "/var/tmp", "fresh scratch space", size_mb=small),
        Mount("tmpfs", "/dev/shm", "fresh shared memory", size_mb=small),
        Mount("tmpfs", "/run", "fresh: no host sockets", size_mb=SMALL_TMPFS_MB),
        Mount("tmpfs", str(home_inside()), "HOME, fresh and empty", size_mb=small),
    ]
    return mounts


def tool_dirs(protected: Protected, path_variable: str) -> tuple[list[Mount], list[str]]:
    """The exact directories of the tools a process may start: the interpreter's prefixes, the
    `PATH` entries and tars-bot's import path, as real paths; (mounts, why others were left
    out). A directory under the checkout is added only inside the interpreter's prefix (a
    `.venv` in the checkout)."""
    prefixes = [real(sys.prefix), real(sys.base_prefix), real(sys.executable).parent]
    wanted = [(p, "the Python that runs nox and ruff") for p in prefixes]
    for entry in path_variable.split(os.pathsep):
        if entry:
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
    return mounts, skipped


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
