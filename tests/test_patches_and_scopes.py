"""Patch formats the planner accepts, and how scope globs match."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tars_bot.paths import PathProblem, Scope, normalize
from tests.helpers import add_improvement

FILES = {"src/m.py": "a\nb\nc\n", "old.txt": "bye\n", "tail.txt": "no newline"}

PATCHES = {
    "git diff": (
        """\
        diff --git a/src/m.py b/src/m.py
        index 1111111..2222222 100644
        --- a/src/m.py
        +++ b/src/m.py
        @@ -1,3 +1,3 @@
         a
        -b
        +B
         c
        """,
        ["src/m.py"],
    ),
    "diff -u with timestamps, no prefixes": (
        """\
        --- src/m.py\t2024-01-01 00:00:00
        +++ src/m.py\t2024-01-02 00:00:00
        @@ -2,2 +2,2 @@
        -b
        +B
         c
        """,
        ["src/m.py"],
    ),
    "new and deleted files": (
        """\
        --- /dev/null
        +++ b/new.txt
        @@ -0,0 +1 @@
        +hello
        --- a/old.txt
        +++ /dev/null
        @@ -1 +0,0 @@
        -bye
        """,
        ["new.txt", "old.txt"],
    ),
    "rename": (
        """\
        diff --git a/old.txt b/renamed.txt
        similarity index 100%
        rename from old.txt
        rename to renamed.txt
        """,
        ["old.txt", "renamed.txt"],
    ),
    "no newline at end of file": (
        """\
        --- a/tail.txt
        +++ b/tail.txt
        @@ -1 +1 @@
        -no newline
        \\ No newline at end of file
        +now a newline
        """,
        ["tail.txt"],
    ),
    "hunk at an offset": (
        """\
        --- a/src/m.py
        +++ b/src/m.py
        @@ -10,2 +10,2 @@
         b
        -c
        +C
        """,
        ["src/m.py"],
    ),
}


@pytest.mark.parametrize("name", PATCHES)
def test_patch_formats(cli, make_repo, name):
    diff, files = PATCHES[name]
    repo = make_repo(FILES)
    body = textwrap.indent(textwrap.dedent(diff), "      ")
    add_improvement(repo, f"title: t\nsteps:\n  - name: p\n    patch: |\n{body}")
    result = cli("plan", "--repo", repo, "--improvement-id", "imp", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["steps"][0]["files"] == files


def test_patch_creating_an_existing_file_is_refused(cli, make_repo):
    repo = make_repo(FILES)
    diff = "--- /dev/null\n+++ b/old.txt\n@@ -0,0 +1 @@\n+x\n"
    body = textwrap.indent(diff, "      ")
    add_improvement(repo, f"title: t\nsteps:\n  - name: p\n    patch: |\n{body}")
    result = cli("plan", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 2
    assert "steps[1].patch: creates old.txt, which already exists" in result.err


@pytest.mark.parametrize(
    ("patterns", "path", "covered"),
    [
        (["src/**"], "src/a/b/c.py", True),
        (["src/**"], "srcx/a.py", False),
        (["src"], "src/a/b.py", True),
        (["*.md"], "README.md", True),
        (["*.md"], "docs/README.md", False),
        (["**/*.md"], "docs/README.md", True),
        (["tests/**/test_*.py"], "tests/unit/test_a.py", True),
        (["tests/**/test_*.py"], "tests/test_a.py", True),
        (["tests/**/test_*.py"], "tests/helpers.py", False),
        (["lib/[ab]?.py"], "lib/a1.py", True),
        (["lib/[!ab]?.py"], "lib/a1.py", False),
        (["**"], "anything/at/all", True),
        ([], "a.py", False),
    ],
)
def test_scope_globs(patterns, path, covered):
    assert Scope(patterns).covers(path) is covered


@pytest.mark.parametrize(
    ("raw", "clean"), [("./a//b.py", "a/b.py"), ("a/./b", "a/b"), ("src/", "src")]
)
def test_normalize_cleans_paths(raw, clean):
    assert normalize(raw) == clean


@pytest.mark.parametrize(
    "raw", ["", "../x", "a/../../b", "/etc/x", "C:/x", "a\\b", ".git", "x/.GIT/y"]
)
def test_normalize_refuses_paths_outside_the_worktree(raw):
    with pytest.raises(PathProblem):
        normalize(raw)


TREE = [
    "README.md", "src/x.py", "src/a/y.py", "src/a/b/z.py", "srcx/q.py", "docs/r.md",
    "tests/test_a.py", "tests/u/test_b.py", "tests/helper.py", "a/b", "b",
]  # fmt: skip
SEGMENTS = ["src", "a", "b", "tests", "*", "**", "s*", "*.py", "test_*", "?", "[ab]"]


@pytest.fixture(scope="module")
def glob_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import commit_files, git

    repo = tmp_path_factory.mktemp("globs")
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, dict.fromkeys(TREE, "x\n"))
    return repo


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(segments=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4))
def test_scopes_match_what_git_pathspecs_match(glob_repo, segments):
    pattern = "/".join(segments)
    listed = subprocess.run(
        ["git", "-C", str(glob_repo), "ls-files", "--", f":(glob){pattern}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(p for p in TREE if Scope([pattern]).covers(p)) == sorted(listed), pattern
