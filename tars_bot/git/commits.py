"""Commits: resolving revisions, making commits, history walks, and trees with a commit's
change undone or applied again."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pygit2

from tars_bot.errors import TarsError
from tars_bot.git.diff import diff_file_path
from tars_bot.git.objects import KINDS, NewContent, signature
from tars_bot.git.trees import Trees

_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.+)$", re.MULTILINE)


class Commits(Trees):
    def resolve(self, ref: str) -> tuple[str, str]:
        """(commit id, tree id) of `ref`, which may be any revision git understands."""
        try:
            commit = self._repo.revparse_single(ref).peel(pygit2.Commit)
        except (KeyError, ValueError):  # not found, or not a commit; corruption is not user error
            if ref == "HEAD" and self._repo.head_is_unborn:
                raise TarsError("HEAD: the repository has no commits yet") from None
            raise TarsError(f"base: no commit named {ref!r}") from None
        return str(commit.id), str(commit.tree_id)

    def create_commit(self, tree: str, parents: list[str], message: str) -> str:
        """A commit object; no ref moves (callers move refs by compare-and-swap)."""
        author = signature(self._repo)
        return str(self._repo.create_commit(None, author, author, message, tree, parents))

    def parents(self, commit: str) -> list[str]:
        return [str(p) for p in self._commit(commit).parent_ids]

    def message(self, commit: str) -> str:
        return self._commit(commit).message

    def trailers(self, commit: str) -> dict[str, str]:
        return dict(_TRAILER.findall(self.message(commit).rsplit("\n\n", 1)[-1]))

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        return ancestor == commit or self._repo.descendant_of(commit, ancestor)

    def commits_between(self, base: str, tip: str) -> list[str]:
        """Commits reachable from `tip` but not from `base`, oldest first."""
        walker = self._repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=base))
        return [str(c.id) for c in walker][::-1]

    def first_parent_walk(self, tip: str, stop: str | None) -> Iterator[tuple[str, list[str], str]]:
        """(commit, parents, message) along `tip`'s first parents, newest first, down to (not
        including) `stop` and what it reaches."""
        walker = self._repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.simplify_first_parent()
        if stop is not None and self.has_object(stop):
            walker.hide(pygit2.Oid(hex=stop))
        for commit in walker:
            yield str(commit.id), [str(p) for p in commit.parent_ids], commit.message

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
        picked = self._commit(commit)
        changes: dict[str, NewContent] = {}
        for delta in picked.parents[0].tree.diff_to_tree(picked.tree).deltas:
            old = None if delta.status == pygit2.GIT_DELTA_ADDED else delta.old_file
            new = None if delta.status == pygit2.GIT_DELTA_DELETED else delta.new_file
            expected, target = (new, old) if undo else (old, new)
            # without rename detection, old and new paths agree
            path = diff_file_path(delta.new_file)
            current = self._entry(onto_tree, path)
            if (current.id if current else None) != (expected.id if expected else None):
                return None
            changes[path] = (
                NewContent(None)
                if target is None
                else NewContent(self._blob_data(target.id), KINDS.get(target.mode))
            )
        return self.build_tree(onto_tree, changes)

    def undo(self, after: str, before: str, onto_tree: str) -> tuple[str | None, list[str]]:
        """`onto_tree` with the change from commit `before` to commit `after` undone by a
        three-way merge (as `git revert` does), and the paths that conflict; the tree is None
        when some do. Later work on other lines of the same files is kept."""
        ancestor, ours, theirs = (
            self._tree(t) for t in (self.tree_of(after), onto_tree, self.tree_of(before))
        )
        index = self._repo.merge_trees(ancestor, ours, theirs)
        if index.conflicts is not None:
            paths = {e.path for entries in index.conflicts for e in entries if e is not None}
            return None, sorted(paths)
        return str(index.write_tree(self._repo)), []
