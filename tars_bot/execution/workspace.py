"""Safe Execution Environment: worktrees, change monitoring, and git's own state guarded.
(Processes start in the sandbox module.)"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tars_bot import faults
from tars_bot.errors import TarsError
from tars_bot.git import NewContent, Repo, Worktree
from tars_bot.git.worktree import Unclean, remove_tree
from tars_bot.paths import PathProblem, Scope, resolve_link
from tars_bot.planning.actions import Files, TreeFiles
from tars_bot.records import journal
from tars_bot.ui.untrusted import path as shown

ENVS = Path("tars-bot") / "nox"  # under the git dir: environments, one folder per dependency set
OWN_ENVS = "own-"  # ENVS/own-*: an execution's own, for its own dependency files
TRASH = Path("tars-bot") / "trash"  # worktree files that could not be deleted in place


@dataclass
class _Held:
    worktree: Worktree
    name: str
    slot: tuple[str, str] | None  # (pool slot lock ref, lock commit) for a pooled worktree


class Workspace:
    """Where one execution's steps happen: in memory, on a commit's tree, until a step needs
    files on disk; then in a worktree of its own under the git dir.

    Worktrees come from a pool kept per repository (reset to exactly the new commit's tree, or
    discarded and made afresh, so nothing leaks from one execution to the next), or are made
    fresh and removed at the end when the pool is busy. Each step becomes a commit; the branch (None
    for a dry run) follows by compare-and-swap.
    """

    def __init__(
        self,
        repo: Repo,
        execution_id: str,
        base: str,
        branch: str | None,
        pool_size: int = 2,
        *,
        existing: bool = False,
    ) -> None:
        self.repo, self.execution_id, self.head = repo, execution_id, base
        self.branch_ref = f"refs/heads/{branch}" if branch else None
        self.pool_size, self.existing = pool_size, existing
        self.worktree: Worktree | None = None
        self._held: list[_Held] = []

    def __enter__(self) -> Workspace:
        if self.existing:  # a resumed execution: its branch must be where its journal left it
            tip = self.repo.ref(self.branch_ref) if self.branch_ref else None
            if self.branch_ref and tip != self.head:
                name = self.branch_ref.removeprefix("refs/heads/")
                moved = f"{self.head[:10]} → {(tip or 'gone')[:10]}"
                raise TarsError(f"the branch moved: {moved} ({name})")
            return self
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

    def link_reader(self, changes: dict[str, NewContent]) -> Callable[[str], str | None]:
        """Where a path of the head tree with `changes` on top is a symbolic link to, if it is."""
        head_tree = self.repo.tree_of(self.head)

        def read_link(path: str) -> str | None:
            if path in changes:
                change = changes[path]
                return (
                    os.fsdecode(change.data) if change.mode == "symlink" and change.data else None
                )
            if self.repo.kind(head_tree, path) != "symlink":
                return None
            return os.fsdecode(self.repo.read(head_tree, path) or b"")

        return read_link

    def commit(self, tree: str, paths: list[str], message: str) -> str:
        commit = self.repo.create_commit(tree, [self.head], message)
        faults.point("after-step-commit")
        self.advance(commit, paths)
        return commit

    def advance(self, commit: str, paths: list[str]) -> None:
        """Make `commit`, a child of the head changing `paths`, the head (and the branch)."""
        if self.branch_ref:
            self.repo.update_ref(self.branch_ref, commit, self.head)
        if self.worktree is not None:
            self.worktree.moved_to(commit, paths, detached=self.branch_ref is None)
        self.head = commit


def worktree_path(repo: Repo, name: str) -> Path:
    """Where tars-bot's worktree `name` lives: under the git dir, invisible to `git status`."""
    return repo.git_dir / "tars-bot" / "worktrees" / name


def _reuse(repo: Repo, n: int, ref: str | None, commit: str) -> Worktree:
    """Pool slot n's worktree, reset to exactly `commit`; made afresh when missing, broken, or
    not provably clean after its reset (what a process left there must never reach the next
    execution)."""
    path = worktree_path(repo, f"pool-{n}")
    if path.name in repo.worktree_names() and (worktree := repo.open_worktree(path)):
        with contextlib.suppress(Unclean):
            worktree.reset_to(commit, ref)
            return worktree
    repo.remove_worktree(path.name, path)
    return repo.add_worktree(path, ref, commit)


def sweep(repo: Repo) -> list[str]:
    """Delete what executions killed mid-way left under the git dir (for `recover`, once no
    execution runs): environments built for their own dependency files, and the trash."""
    removed = []
    for own in sorted((repo.git_dir / ENVS).glob(f"{OWN_ENVS}*")):
        remove_tree(own)
        removed.append(f"removed the environments a killed execution built ({own.name})")
    trash = repo.git_dir / TRASH
    for thrown in sorted(trash.iterdir()) if trash.is_dir() else []:
        remove_tree(thrown)
        removed.append(f"emptied the trash ({thrown.name})")
    return removed


def clear_pool(repo: Repo) -> list[str]:
    """Remove the pooled worktrees no live execution holds (for `recover`)."""
    removed = []
    for name in sorted(repo.worktree_names()):
        if name.startswith("pool-") and repo.ref(f"{journal.POOL}{name[5:]}") is None:
            repo.remove_worktree(name, worktree_path(repo, name))
            removed.append(name)
    return removed


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


def oversized(root: Path, paths: list[str], max_bytes: int) -> str | None:
    """A file over the size limit among `paths`, measured by stat, never by reading it."""
    for path in paths:
        with contextlib.suppress(OSError):
            if (size := (root / path).lstat().st_size) > max_bytes:
                return _too_large(path, size, max_bytes)
    return None


def _too_large(path: str, size: int, max_bytes: int) -> str:
    return f"{shown(path)} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit"


def anomaly(
    changes: dict[str, NewContent], policy: Policy, read_link: Callable[[str], str | None]
) -> str | None:
    """Why these changes may not be committed, or None when they may. Symbolic links are
    followed through the tree's other links (`read_link`), as the file system would."""
    for path, change in changes.items():
        if path.split("/")[0] == ".git" or "/.git/" in f"/{path}":
            return f"wrote into .git: {shown(path)}"
        if not policy.scope.covers(path):
            return f"changed {shown(path)}, outside its scope ({', '.join(policy.scope.patterns)})"
        if policy.protected.covers(path):
            return f"changed {shown(path)}, a protected path"
        if change.data is None:
            continue
        if change.mode == "symlink":
            inside = resolve_link(path, read_link)
            if inside is None or inside.split("/")[0] == ".git":
                target = os.fsdecode(change.data)
                return f"{shown(path)} is a symbolic link leaving the worktree (to {shown(target)})"
        elif len(change.data) > policy.max_file_bytes:
            return _too_large(path, len(change.data), policy.max_file_bytes)
    return None


class GitGuard:
    """Around a step or a check: git's own files (config, hooks, info/, alternates, the
    worktree's admin files and `.git` link) by content, and refs by target. On exit anything
    changed is put back, and `tampered` says what was."""

    def __init__(
        self, repo: Repo, worktree: Path, refs: list[str], user_refs: tuple[str, ...] | None
    ) -> None:
        """`refs`: tars-bot's own refs to watch. `user_refs`: when unsandboxed, watch the user's
        refs and HEAD too, all but those under these prefixes (other executions'); in the
        sandbox they cannot move, and the user may move them meanwhile."""
        self.repo, self.refs, self.skipped = repo, refs, user_refs
        common = repo.git_dir
        admin = _admin_dir(worktree)
        self._roots = [common / "config", common / "config.worktree", common / "hooks"]
        self._roots += [common / "info", worktree / ".git"]
        self._roots += [common / "objects" / "info" / n for n in ("alternates", "http-alternates")]
        self._roots += [admin] if admin else []
        self._roots += [common / "HEAD"] if user_refs is not None else []
        self.tampered: str | None = None

    def __enter__(self) -> GitGuard:
        self._files, self._refs = self._file_state(), self._ref_state()
        return self

    def __exit__(self, *exc: object) -> None:
        files, refs = self._file_state(), self._ref_state()
        changed = sorted(
            p for p in files.keys() | self._files.keys() if files.get(p) != self._files.get(p)
        )
        moved = sorted(
            r for r in refs.keys() | self._refs.keys() if refs.get(r) != self._refs.get(r)
        )
        for path in changed:
            _put_back(path, self._files.get(path))
        for ref in moved:
            self.repo.update_ref(ref, self._refs.get(ref), refs.get(ref))
        if changed or moved:
            named = [str(p.relative_to(self.repo.git_dir.parent)) for p in changed] + moved
            listed = ", ".join(named[:5]) + (
                f" and {len(named) - 5} more" if len(named) > 5 else ""
            )
            self.tampered = f"changed git's own state, put back by tars-bot: {listed}"

    def _file_state(self) -> dict[Path, bytes]:
        state = {}
        for root in self._roots:
            paths = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
            for path in paths:
                if path.is_symlink():
                    state[path] = b"l" + os.fsencode(path.readlink())
                elif path.is_file():
                    state[path] = (
                        b"x" if path.stat().st_mode & 0o111 else b"f"
                    ) + path.read_bytes()
        return state

    def _ref_state(self) -> dict[str, str]:
        refs = {name: target for name in self.refs if (target := self.repo.ref(name))}
        if self.skipped is not None:
            refs.update(
                (name, target)
                for name, target in self.repo.refs("refs/").items()
                if not name.startswith(self.skipped)
            )
        return refs


def guard(
    repo: Repo, worktree: Path, own_refs: list[str], sandboxed: bool, branch_prefix: str
) -> GitGuard:
    """The guard around a step's or check's process: tars-bot's own refs always; unsandboxed,
    every ref of the user too (all but tars-bot's and other executions' branches)."""
    users = None if sandboxed else ("refs/tars-bot/", f"refs/heads/{branch_prefix}")
    return GitGuard(repo, worktree, own_refs, users)


def _admin_dir(worktree: Path) -> Path | None:
    """The git dir a linked worktree's `.git` file points to."""
    link = worktree / ".git"
    if not link.is_file() or link.is_symlink():
        return None
    text = link.read_text(errors="replace").strip()
    return Path(text.removeprefix("gitdir: ")) if text.startswith("gitdir: ") else None


def _put_back(path: Path, data: bytes | None) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if data is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    kind, content = data[:1], data[1:]
    if kind == b"l":
        path.symlink_to(os.fsdecode(content))
    else:
        path.write_bytes(content)
        path.chmod(0o755 if kind == b"x" else 0o644)
