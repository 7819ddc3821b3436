"""The repository: refs (compare-and-swap), objects, trees, worktrees, remotes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pygit2

from tars_bot import faults
from tars_bot.errors import TarsError
from tars_bot.git.diff import diff_file_path
from tars_bot.git.objects import KINDS, MODES, EntryKind, NewContent, signature
from tars_bot.git.remote import Callbacks
from tars_bot.git.worktree import Worktree, discard

T = TypeVar("T")
LOCK_ATTEMPTS = 50
LOCK_RETRY_S = 0.02
_GIT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "XDG_CONFIG_HOME")
_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.+)$", re.MULTILINE)


class RefConflict(TarsError):
    """A ref was not where the caller expected it: someone else moved it."""


class Repo:
    """A repository opened from any directory inside its working tree."""

    def __init__(self, path: Path | str = ".") -> None:
        found = pygit2.discover_repository(str(path))
        if found is None:
            raise TarsError(f"{path}: not inside a git repository")
        self._repo = pygit2.Repository(found)
        if self._repo.is_bare:
            raise TarsError(f"{path}: is a bare repository; tars-bot needs a working tree")

    @property
    def workdir(self) -> Path:
        return Path(self._repo.workdir)

    @property
    def git_dir(self) -> Path:
        return Path(self._repo.path)

    def resolve(self, ref: str) -> tuple[str, str]:
        """(commit id, tree id) of `ref`, which may be any revision git understands."""
        try:
            commit = self._repo.revparse_single(ref).peel(pygit2.Commit)
        except (KeyError, ValueError):  # not found, or not a commit; corruption is not user error
            if ref == "HEAD" and self._repo.head_is_unborn:
                raise TarsError("HEAD: the repository has no commits yet") from None
            raise TarsError(f"base: no commit named {ref!r}") from None
        return str(commit.id), str(commit.tree_id)

    def _entry(self, tree_id: str, path: str) -> pygit2.Object | None:
        try:
            return self._repo[tree_id] / path  # type: ignore[operator]
        except KeyError:
            return None

    def kind(self, tree_id: str, path: str) -> EntryKind | None:
        entry = self._entry(tree_id, path)
        return None if entry is None else KINDS.get(entry.filemode)

    def read(self, tree_id: str, path: str) -> bytes | None:
        entry = self._entry(tree_id, path)
        if entry is None or entry.type != pygit2.GIT_OBJECT_BLOB:
            return None
        return entry.data  # type: ignore[attr-defined]

    def blob(self, oid: str) -> bytes:
        return self._repo[oid].data  # type: ignore[attr-defined]

    def newest_blobs(self, tree: str, directory: str, limit: int | None) -> Iterator[bytes]:
        """The blobs two levels below `directory` (shards of entries), last names first, the
        newest when names sort by time. Only the shards needed are read."""
        top = self._entry(tree, directory)
        if top is None:
            return
        shards = self._repo[top.id]
        count = 0
        for i in range(len(shards) - 1, -1, -1):  # type: ignore[arg-type]
            shard = self._repo[shards[i].id]  # type: ignore[index]
            for j in range(len(shard) - 1, -1, -1):  # type: ignore[arg-type]
                if limit is not None and count >= limit:
                    return
                yield self._repo[shard[j].id].data  # type: ignore[index,attr-defined]
                count += 1

    def tree_names(self, tree: str, directory: str) -> list[str]:
        """The names two levels below `directory`, without their suffix."""
        top = self._entry(tree, directory)
        if top is None:
            return []
        return [
            entry.name.rsplit(".", 1)[0]  # type: ignore[union-attr]
            for shard in self._repo[top.id]  # type: ignore[attr-defined]
            for entry in self._repo[shard.id]  # type: ignore[attr-defined]
        ]

    def blob_id(self, tree_id: str, path: str) -> str | None:
        entry = self._entry(tree_id, path)
        return None if entry is None else str(entry.id)

    def ref(self, name: str) -> str | None:
        ref = self._repo.references.get(name)
        return None if ref is None else str(ref.target)

    def refs(self, prefix: str) -> dict[str, str]:
        return {
            r.name: str(r.target)
            for r in self._repo.references.iterator()
            if r.name.startswith(prefix) and r.type == pygit2.enums.ReferenceType.DIRECT
        }

    def create_ref(self, name: str, target: str) -> bool:
        """Create `name` atomically; False if it already exists."""

        def create() -> bool:
            try:
                self._repo.references.create(name, target, force=False)
            except pygit2.AlreadyExistsError:
                return False
            return True

        return _retrying(name, create)

    def clear_stale_ref_lock(self, name: str) -> bool:
        """Remove the `.lock` file that a process killed mid-update left for ref `name`.
        Only for refs whose owner is known to be dead: a live writer's lock must stay."""
        lock = self.git_dir / f"{name}.lock"
        if lock.is_file():
            lock.unlink()
            return True
        return False

    def update_ref(self, name: str, new: str | None, expected: str | None) -> None:
        """Compare-and-swap: set (or, with new=None, delete) `name` only if it is at `expected`."""

        def swap() -> None:
            with self._repo.transaction() as txn:
                txn.lock_ref(name)
                current = self.ref(name)
                if current != expected:
                    raise RefConflict(f"{name} is at {current}, expected {expected}")
                faults.point("before-ref-update")
                if new is None:
                    txn.remove(name)
                else:
                    txn.set_target(name, new, message="tars-bot")

        _retrying(name, swap)
        faults.point("after-ref-update")

    def commit_file(self, commit: str, path: str) -> bytes | None:
        return self.read(str(self._repo[commit].peel(pygit2.Commit).tree_id), path)  # type: ignore[attr-defined]

    def tree_of(self, commit: str) -> str:
        """The tree of `commit` (a tree's id is its own tree)."""
        target = self._repo[commit]
        if isinstance(target, pygit2.Tree):
            return commit
        return str(target.peel(pygit2.Commit).tree_id)  # type: ignore[attr-defined]

    def build_tree(self, tree: str | None, changes: dict[str, NewContent]) -> str:
        """`tree` with `changes` applied; only the directories on the changed paths are
        rewritten, so the cost does not grow with the size of the repository."""
        nested: dict[str, object] = {}
        for path, change in changes.items():
            *dirs, name = path.split("/")
            node = nested
            for part in dirs:
                node = node.setdefault(part, {})  # type: ignore[assignment]
            node[name] = change
        base = self._repo[tree] if tree else None
        return str(self._build(base, nested) or self._repo.TreeBuilder().write())  # type: ignore[arg-type]

    def _build(self, tree: pygit2.Tree | None, nested: dict[str, object]) -> pygit2.Oid | None:
        builder = self._repo.TreeBuilder(tree) if tree is not None else self._repo.TreeBuilder()
        for name, change in nested.items():
            existing = builder.get(name)
            if isinstance(change, dict):
                subtree = (
                    self._repo[existing.id] if existing and existing.type_str == "tree" else None
                )
                oid = self._build(subtree, change)  # type: ignore[arg-type]
                entry = (oid, pygit2.GIT_FILEMODE_TREE) if oid is not None else None
            elif change.data is None:  # type: ignore[union-attr]
                entry = None
            else:
                keep = existing.filemode if existing and existing.type_str == "blob" else None
                mode = MODES.get(change.mode) or keep or pygit2.GIT_FILEMODE_BLOB  # type: ignore[union-attr]
                entry = (self._repo.create_blob(change.data), mode)  # type: ignore[union-attr]
            if existing is not None:
                builder.remove(name)
            if entry is not None:
                builder.insert(name, *entry)
        return builder.write() if len(builder) else None

    def changed_lines(self, old_tree: str, new_tree: str) -> int:
        stats = self._repo[old_tree].diff_to_tree(self._repo[new_tree]).stats  # type: ignore[attr-defined]
        return stats.insertions + stats.deletions

    def create_commit(self, tree: str, parents: list[str], message: str) -> str:
        """A commit object; no ref moves (callers move refs by compare-and-swap)."""
        author = signature(self._repo)
        return str(self._repo.create_commit(None, author, author, message, tree, parents))

    def revert(self, commit: str, onto: str) -> str | None:
        """The tree of `onto` with `commit`'s change undone; None when a file it changed has
        changed again since."""
        return self._transplant(commit, self.tree_of(onto), undo=True)

    def cherry_pick(self, commit: str, onto_tree: str) -> str | None:
        """`onto_tree` with `commit`'s change applied; None when a file it changes differs
        from what the change expects."""
        return self._transplant(commit, onto_tree, undo=False)

    def _transplant(self, commit: str, onto_tree: str, *, undo: bool) -> str | None:
        # File by file rather than a three-way merge: the cost follows the size of the change,
        # not of the repository (libgit2's revert and merge index the whole tree).
        picked = self._repo[commit].peel(pygit2.Commit)
        changes = {}
        for delta in picked.parents[0].tree.diff_to_tree(picked.tree).deltas:
            old = None if delta.status == pygit2.GIT_DELTA_ADDED else delta.old_file
            new = None if delta.status == pygit2.GIT_DELTA_DELETED else delta.new_file
            expected, target = (new, old) if undo else (old, new)
            path = diff_file_path(
                delta.new_file
            )  # without rename detection, old and new paths agree
            current = self._entry(onto_tree, path)
            if (current.id if current else None) != (expected.id if expected else None):
                return None
            changes[path] = (
                NewContent(None)
                if target is None
                else NewContent(self._repo[target.id].data, KINDS.get(target.mode))  # type: ignore[attr-defined]
            )
        return self.build_tree(onto_tree, changes)

    def undo(self, after: str, before: str, onto_tree: str) -> tuple[str | None, list[str]]:
        """`onto_tree` with the change from commit `before` to commit `after` undone by a
        three-way merge (as `git revert` does), and the paths that conflict; the tree is None
        when some do. Later work on other lines of the same files is kept."""
        ancestor, ours, theirs = (
            self._repo[t] for t in (self.tree_of(after), onto_tree, self.tree_of(before))
        )
        index = self._repo.merge_trees(ancestor, ours, theirs)
        if index.conflicts is not None:
            paths = {e.path for entries in index.conflicts for e in entries if e is not None}
            return None, sorted(paths)
        return str(index.write_tree(self._repo)), []

    def first_parent_walk(self, tip: str, stop: str | None) -> Iterator[tuple[str, list[str], str]]:
        """(commit, parents, message) along `tip`'s first parents, newest first, down to (not
        including) `stop` and what it reaches."""
        walker = self._repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.simplify_first_parent()
        if stop is not None and self.has_object(stop):
            walker.hide(pygit2.Oid(hex=stop))
        for commit in walker:
            yield str(commit.id), [str(p) for p in commit.parent_ids], commit.message

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        return ancestor == commit or self._repo.descendant_of(commit, ancestor)

    def add_worktree(self, path: Path, ref: str | None, commit: str) -> Worktree:
        """Check out existing branch `ref` at `path`, or `commit` detached when ref is None.
        The worktree is named after the last part of `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # git, not libgit2: git's checkout is about 4x faster on large trees (1.9 s vs 7.4 s
        # for 20,000 files, benchmarks/run.py), and checkout is an execution's costliest part.
        # Hooks are off: the user's post-checkout hook must not run in tars-bot's worktree.
        # `git worktree add` reads every worktree's record, and fails on one another process is
        # writing: records are made one at a time (a short lock), the files checked out after.
        target = (
            [str(path), ref.removeprefix("refs/heads/")] if ref else ["--detach", str(path), commit]
        )
        with self._worktree_records():
            self._git("worktree", "add", "--quiet", "--no-checkout", *target)
        self._git("-C", str(path), "reset", "--hard", "--quiet")
        return Worktree(path)

    def _git(self, *args: str) -> str:
        # Nothing the repository's config names runs here (hooks, fsmonitor), and git gets no
        # secrets: only what it needs from the environment.
        safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
        env = {k: v for k, v in os.environ.items() if k in _GIT_ENV or k.startswith("GIT_CONFIG")}
        proc = subprocess.run(
            ["git", *safe, *args], cwd=self.workdir, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise TarsError(f"git {' '.join(args[:3])}: {proc.stderr.strip()}")
        return proc.stdout

    def create_bundle(self, path: Path, refs: list[str], exclude: str) -> None:
        """A git bundle at `path` holding `refs` and what they add to `exclude`."""
        self._git("bundle", "create", "--quiet", str(path), *refs, f"^{exclude}")

    def bundle_refs(self, path: Path) -> dict[str, str]:
        """The refs a bundle holds: name -> commit id (git checks the bundle first)."""
        self._git("bundle", "verify", "--quiet", str(path))
        lines = self._git("bundle", "list-heads", str(path)).splitlines()
        return {name: commit for commit, name in (line.split(" ", 1) for line in lines)}

    def fetch_bundle(self, path: Path, refspecs: list[str]) -> None:
        """Bring a bundle's objects in, its refs to where `refspecs` say."""
        self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(path), *refspecs)

    def parents(self, commit: str) -> list[str]:
        return [str(p) for p in self._repo[commit].peel(pygit2.Commit).parent_ids]  # type: ignore[attr-defined]

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Paths that differ between two commits (or trees), renames as delete and add."""
        old_tree, new_tree = self._repo[self.tree_of(old)], self._repo[self.tree_of(new)]
        deltas = old_tree.diff_to_tree(new_tree).deltas  # type: ignore[attr-defined]
        return sorted(
            {diff_file_path(d.new_file) for d in deltas}
            | {diff_file_path(d.old_file) for d in deltas}
        )

    def tree_paths(self, commit: str) -> list[str]:
        """Every file path in a commit's tree."""
        tree = self._repo[self.tree_of(commit)]
        return sorted(_walk(tree, ""))

    def export(self, tree: str, dest: Path) -> None:
        """Write a tree's files under `dest` (a fresh directory): a copy that shares nothing
        with the repository, for processes that read a commit but must not see the checkout."""
        for path, entry in _entries(self._repo[tree], ""):
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            data = self._repo[entry.id].data  # type: ignore[attr-defined]
            if entry.filemode == pygit2.enums.FileMode.LINK:
                target.symlink_to(os.fsdecode(data))
            else:
                target.write_bytes(data)
                if entry.filemode == pygit2.enums.FileMode.BLOB_EXECUTABLE:
                    target.chmod(0o755)

    @contextlib.contextmanager
    def _worktree_records(self) -> Iterator[None]:
        """Serialize changes to git's worktree records across processes (released on death)."""
        lock_file = self.git_dir / "tars-bot" / "worktrees.lock"
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        with lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _remote(self, remote: str) -> pygit2.Remote:
        try:
            return self._repo.remotes[remote]
        except KeyError:
            return self._repo.remotes.create_anonymous(remote)  # a URL or path given directly

    def remote_refs(self, remote: str, token: str | None = None) -> dict[str, str]:
        """The refs the remote has now: name -> commit id."""
        callbacks = Callbacks(token)
        try:
            heads = self._remote(remote).list_heads(callbacks=callbacks)
        except pygit2.GitError as e:
            raise TarsError(f"cannot reach remote {remote}: {e}") from None
        return {head.name: str(head.oid) for head in heads}

    def push(self, remote: str, refspecs: list[str], token: str | None = None) -> None:
        callbacks = Callbacks(token)
        try:
            self._remote(remote).push(refspecs, callbacks=callbacks)
        except pygit2.GitError as e:
            raise TarsError(f"push to {remote} failed: {e}") from None
        if callbacks.rejected:
            refused = "; ".join(f"{ref}: {why}" for ref, why in callbacks.rejected.items())
            raise TarsError(f"push to {remote} refused: {refused}")

    def fetch(self, remote: str, refspecs: list[str], token: str | None = None) -> None:
        try:
            self._remote(remote).fetch(refspecs, callbacks=Callbacks(token))
        except pygit2.GitError as e:
            raise TarsError(f"fetch from {remote} failed: {e}") from None

    def has_object(self, oid: str) -> bool:
        return oid in self._repo

    def open_worktree(self, path: Path) -> Worktree | None:
        """A worktree made earlier, or None when it is gone or broken."""
        try:
            return Worktree(path)
        except (pygit2.GitError, OSError):
            return None

    def remove_worktree(self, name: str, path: Path) -> None:
        """Delete the worktree's files (whatever a process did to them: what cannot be deleted
        is moved to the trash) and git's record of it; missing parts are fine."""
        discard(path, self.git_dir / "tars-bot" / "trash")
        with self._worktree_records():
            with contextlib.suppress(KeyError, pygit2.GitError):
                self._repo.lookup_worktree(name).prune(True)
            # a worktree killed half-made may leave git's record without the files to prune by
            shutil.rmtree(self.git_dir / "worktrees" / name, ignore_errors=True)

    def checked_out_at(self, ref: str) -> Path | None:
        """Where one of the user's worktrees (not tars-bot's) has branch `ref` checked out."""
        common = self.git_dir
        if (common / "commondir").is_file():  # opened from a linked worktree
            common = (common / (common / "commondir").read_text().strip()).resolve()
        heads = [(common / "HEAD", common.parent)]
        for admin in (common / "worktrees").glob("*"):
            if (admin / "gitdir").is_file():
                checkout = Path((admin / "gitdir").read_text().strip()).parent
                heads.append((admin / "HEAD", checkout))
        for head, checkout in heads:
            mine = checkout.resolve().is_relative_to((common / "tars-bot").resolve())
            if not mine and head.is_file() and head.read_text().strip() == f"ref: {ref}":
                return checkout
        return None

    def worktree_names(self) -> list[str]:
        return list(self._repo.list_worktrees())

    def prune_worktrees(self) -> list[str]:
        """Forget worktrees whose directories are gone (`git worktree prune`)."""
        pruned = []
        for name in self._repo.list_worktrees():
            worktree = self._repo.lookup_worktree(name)
            if worktree.is_prunable:
                worktree.prune(True)
                pruned.append(name)
        return pruned

    def message(self, commit: str) -> str:
        return self._repo[commit].peel(pygit2.Commit).message  # type: ignore[attr-defined]

    def trailers(self, commit: str) -> dict[str, str]:
        return dict(_TRAILER.findall(self.message(commit).rsplit("\n\n", 1)[-1]))

    def commits_between(self, base: str, tip: str) -> list[str]:
        """Commits reachable from `tip` but not from `base`, oldest first."""
        walker = self._repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=base))
        return [str(c.id) for c in walker][::-1]

    def diff(self, old: str, new: str) -> str:
        """`git diff old new` as text (commits or trees)."""
        old_tree, new_tree = self._repo[self.tree_of(old)], self._repo[self.tree_of(new)]
        return old_tree.diff_to_tree(new_tree).patch or ""  # type: ignore[attr-defined]


def _walk(tree: pygit2.Tree, prefix: str) -> Iterator[str]:
    for entry in tree:
        if entry.type_str == "tree":
            yield from _walk(entry, f"{prefix}{entry.name}/")  # type: ignore[arg-type]
        else:
            yield f"{prefix}{entry.name}"


def _entries(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Object]]:
    """(path, entry) of every blob and link of a tree; submodules are left out."""
    for entry in tree:
        if entry.type_str == "tree":
            yield from _entries(entry, f"{prefix}{entry.name}/")  # type: ignore[arg-type]
        elif entry.type_str == "blob":
            yield f"{prefix}{entry.name}", entry


def create_repository(path: Path, files: dict[str, str], message: str) -> str:
    """A new repository at `path` whose first commit holds `files`; returns the commit id."""
    repo = pygit2.init_repository(str(path), initial_head="main")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    repo.index.add_all()
    repo.index.write()
    author = signature(repo)
    tree = repo.index.write_tree()
    return str(repo.create_commit("HEAD", author, author, message, tree, []))


def _retrying(name: str, action: Callable[[], T]) -> T:
    """Run a ref update, retrying while another process holds the ref's lock file (concurrent
    executions meet there for milliseconds); a lock that stays is reported."""
    for attempt in range(LOCK_ATTEMPTS):
        try:
            return action()
        except (pygit2.GitError, OSError) as e:
            if attempt == LOCK_ATTEMPTS - 1:
                raise RefConflict(
                    f"{name}: {e}; if no other tars-bot process runs, `tars-bot recover` clears it"
                ) from None
            time.sleep(LOCK_RETRY_S)
    raise AssertionError("unreachable")


def sync_clone(url: str, path: Path, branch: str, token: str | None) -> Repo:
    """A clone at `path`, made or fetched, whose working tree is the remote's `branch`. Only for
    clones tars-bot owns (the webhook app's local workers): it resets them."""
    callbacks = Callbacks(token)
    try:
        if not (path / ".git").exists():
            pygit2.clone_repository(url, str(path), callbacks=callbacks)
        repo = pygit2.Repository(str(path))
        repo.remotes["origin"].fetch(callbacks=callbacks)
        target = repo.references[f"refs/remotes/origin/{branch}"].target
    except (pygit2.GitError, KeyError) as e:
        raise TarsError(f"cannot sync {url} ({branch}) into {path.name}: {e}") from None
    repo.references.create(f"refs/heads/{branch}", target, force=True)
    repo.set_head(f"refs/heads/{branch}")
    repo.reset(target, pygit2.enums.ResetMode.HARD)
    return Repo(path)


def is_valid_branch_name(name: str) -> bool:
    return pygit2.reference_is_valid_name(f"refs/heads/{name}")
