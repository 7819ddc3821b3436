"""What a step may not leave (execution/workspace.py): writes into .git, paths outside its scope,
protected paths, symbolic links leaving the tree, and files over the size limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tars_bot.config import Config
from tars_bot.execution.workspace import Policy, anomaly, oversized
from tars_bot.git import NewContent
from tars_bot.paths import Scope

MB = 1_000_000
POLICY = Policy(
    scope=Scope(["src/**", "docs"]),
    protected=Scope(Config().protected),
    max_file_bytes=MB,
)


def links(**targets: str):
    """A `read_link` for a tree whose symbolic links are `targets` (path -> link text)."""
    by_path = {path.replace("__", "/"): target for path, target in targets.items()}
    return by_path.get


def found(changes: dict[str, NewContent], policy: Policy = POLICY, read_link=None) -> str | None:
    return anomaly(changes, policy, read_link or links())


def test_changes_inside_the_scope_are_fine():
    changes = {
        "src/pkg/a.py": NewContent(b"A = 1\n"),
        "src/pkg/run.sh": NewContent(b"#!/bin/sh\n", "executable"),
        "docs/deep/page.md": NewContent(b"# page\n"),
        "src/pkg/old.py": NewContent(None),
    }
    assert found(changes) is None


@pytest.mark.parametrize("content", [b"x", None])
def test_a_change_outside_the_scope_is_named_with_the_scope(content):
    changes = {"src/ok.py": NewContent(b"ok"), "setup.py": NewContent(content)}
    assert found(changes) == "changed setup.py, outside its scope (src/**, docs)"


def test_a_literal_scope_covers_what_is_below_it_and_nothing_beside_it():
    assert found({"docs/a/b.md": NewContent(b"x")}) is None
    assert found({"docsy.md": NewContent(b"x")}) == (
        "changed docsy.md, outside its scope (src/**, docs)"
    )


@pytest.mark.parametrize("path", [".git/config", "src/.git/hooks/pre-commit", ".git"])
def test_a_write_into_a_git_dir_is_refused_before_anything_else(path):
    whole = Policy(Scope(["**"]), Scope([]), MB)
    assert found({path: NewContent(b"x")}, whole) == f"wrote into .git: {path}"


def test_a_name_merely_containing_git_is_not_a_git_dir():
    whole = Policy(Scope(["**"]), Scope([]), MB)
    assert found({"src/.gitignore": NewContent(b"x"), "my.git/x": NewContent(b"x")}, whole) is None


def test_a_protected_path_is_refused_even_inside_the_scope():
    everything = Policy(Scope(["**"]), Scope(Config().protected), MB)
    change = {".github/workflows/ci.yml": NewContent(None)}
    assert found(change, everything) == "changed .github/workflows/ci.yml, a protected path"


def test_a_link_inside_the_tree_is_fine():
    change = {"src/link": NewContent(b"pkg/a.py", "symlink")}
    assert found(change, read_link=links(src__link="pkg/a.py")) is None


@pytest.mark.parametrize(
    ("target", "others"),
    [
        ("../../etc/passwd", {}),
        ("/etc/passwd", {}),
        ("../.git/config", {}),  # inside the worktree, but git's own
        ("hop", {"src__hop": "../.."}),  # leaves through a second link
        ("loop", {"src__loop": "loop2", "src__loop2": "loop"}),
    ],
)
def test_a_link_leaving_the_tree_is_refused_naming_its_target(target, others):
    change = {"src/link": NewContent(target.encode(), "symlink")}
    read_link = links(src__link=target, **others)
    assert found(change, read_link=read_link) == (
        f"src/link is a symbolic link leaving the worktree (to {target})"
    )


def test_a_file_over_the_limit_is_refused_and_one_at_the_limit_is_not():
    assert found({"src/at.bin": NewContent(b"x" * MB)}) is None
    assert found({"src/big.bin": NewContent(b"x" * (2 * MB))}) == (
        "src/big.bin is 2.0 MB, over the 1 MB limit"
    )


def test_a_link_is_not_measured_by_its_targets_size():
    change = {"src/link": NewContent(b"a" * (2 * MB), "symlink")}
    long_name = "a" * (2 * MB)
    assert found(change, read_link=links(src__link=long_name)) is None


def test_an_odd_name_stays_on_one_line_as_git_quotes_it():
    assert found({"bad\nname.py": NewContent(b"x")}) == (
        'changed "bad\\nname.py", outside its scope (src/**, docs)'
    )


def test_oversized_measures_files_on_disk_without_reading_them(tmp_path: Path):
    (tmp_path / "small.txt").write_bytes(b"x" * 10)
    with (tmp_path / "sparse.bin").open("wb") as f:
        f.truncate(5 * MB)  # no data blocks: only stat can say how big it is
    assert oversized(tmp_path, ["small.txt"], MB) is None
    assert oversized(tmp_path, ["small.txt", "sparse.bin"], MB) == (
        "sparse.bin is 5.0 MB, over the 1 MB limit"
    )


def test_oversized_skips_missing_paths_and_does_not_follow_links(tmp_path: Path):
    with (tmp_path / "outside.bin").open("wb") as f:
        f.truncate(5 * MB)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link").symlink_to(tmp_path / "outside.bin")
    assert oversized(tree, ["gone.txt", "link"], MB) is None
