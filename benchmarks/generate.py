"""Generated repositories for benchmarks, written straight into a pack with `git fast-import`
(seconds for 100,000 files; the main working tree stays empty, tars-bot never reads it)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def module_path(i: int) -> str:
    return f"src/pkg{i % 100}/mod{i}.py"


def module_source(i: int) -> str:
    return f"def f{i}(x):\n    return x + {i}\n"


def make_repo(root: Path, files: int, extra: dict[str, str] | None = None) -> Path:
    """A repository whose one commit on main holds `files` small modules (and `extra`)."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    contents = {module_path(i): module_source(i) for i in range(files)} | (extra or {})
    stream = [
        "commit refs/heads/main",
        "committer bench <bench@example.com> 1700000000 +0000",
        "data 9",
        "generated",
    ]
    for path, text in contents.items():
        data = text.encode()
        stream += [f"M 100644 inline {path}", f"data {len(data)}", text]
    subprocess.run(
        ["git", "-C", str(root), "fast-import", "--quiet"],
        input="\n".join(stream).encode() + b"\n",
        check=True,
    )
    return root
