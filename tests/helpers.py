"""Builders shared by the tests: real repositories, real tars-bot processes, real events.

Fixtures live in conftest.py (pytest finds them without an import); plain functions and constants
live here and are imported by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tars_bot.github import action
from tars_bot.github.client import GitHubClient

# Git and files


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))


def commit_files(repo: Path, files: dict[str, str], message: str = "change") -> str:
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def leftover_worktrees(repo: Path) -> list[str]:
    """Worktrees other than the main one and the idle pool (detached, no slot held)."""
    entries = git(repo, "worktree", "list", "--porcelain").split("\n\n")[1:]
    held = git(repo, "for-each-ref", "--format=%(refname)", "refs/tars-bot/pool")
    return [
        entry
        for entry in entries
        if "/.git/tars-bot/worktrees/pool-" not in entry or "detached" not in entry or held
    ]


# tars-bot as a process


def start_tars(repo: Path, *args: str, fault: str | None = None) -> subprocess.Popen[str]:
    """`tars-bot ARGS` as a real process in `repo` (TARS_BOT_FAULT set only when given)."""
    env = {k: v for k, v in os.environ.items() if k != "TARS_BOT_FAULT"}
    if fault:
        env["TARS_BOT_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "tars_bot", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_tars(repo: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = start_tars(repo, *args, fault=fault)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_until(reached: Callable[[], object], proc: subprocess.Popen[str]) -> None:
    """Poll until a running tars-bot process reaches a point the test can observe."""
    deadline = time.monotonic() + 30
    while not reached():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)


@dataclass
class Result:
    code: int
    out: str
    err: str


# Improvements


def add_improvement(repo: Path, text: str, name: str = "imp.yaml") -> Path:
    path = repo / ".tars" / "improvements" / name
    write_files(path.parent, {name: text})
    return path


BASE = {
    "pyproject.toml": """\
        [project]
        name = "pkg"

        [tool.tars-bot]
        components = { core = ["src/**"] }
        """,
    "src/pkg/__init__.py": "",
    "src/pkg/core.py": "VALUE = 1\n",
    "README.md": "# sample\n",
}


def improvement(run: str, extra: str = "") -> str:
    body = "\n".join(f"          {line}" for line in run.strip().splitlines())
    return f"title: hostile\ntarget_components: [core]\nsteps:\n  - name: attack\n    run: |\n{body}\n{extra}"


# Validation: a noxfile that counts its runs and fails on data marked BAD

COUNTING_NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    with open({counter!r}, "a") as f:
        f.write("run\\n")
    session.run("python", "check.py")

@nox.session(python="3.99")
def old_python(session):
    pass
"""


DATA_CHECK = """\
import pathlib, sys
bad = [p.name for p in pathlib.Path("data").glob("*.txt") if "BAD" in p.read_text()]
print("=== 1 failed, 5 passed in 0.01s ===" if bad else "=== 6 passed in 0.01s ===")
sys.exit(1 if bad else 0)
"""


def make_validated_repo(make_repo, tmp_path: Path, name: str = "repo") -> tuple[Path, Path]:
    counter = tmp_path / f"{name}-runs.txt"
    repo = make_repo(
        {
            "noxfile.py": COUNTING_NOXFILE.format(counter=str(counter)),
            # the run counter lies outside the worktree, where only an unsandboxed session writes
            "pyproject.toml": '[tool.tars-bot]\nsandbox = "off"\n',
            "check.py": DATA_CHECK,
            "data/base.txt": "fine\n",
            "pkg/__init__.py": "def kept(x):\n    return x\n\n\ndef old(x):\n    return x\n",
        },
        name=name,
    )
    return repo, counter


def history(cli, repo: Path) -> list[dict]:
    return json.loads(cli("history", "--repo", repo, "--format", "json").out)


# Crash safety: the user's state, and what `recover` must leave


def user_state(repo: Path) -> dict[str, str]:
    """Everything of the user's: read the index first, since `git status` may refresh it."""
    index = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    files = {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return {
        "index": index,
        "HEAD": (repo / ".git" / "HEAD").read_text(),
        "head commit": git(repo, "rev-parse", "HEAD"),
        "files": json.dumps(files, sort_keys=True),
        "stash": git(repo, "stash", "list", "--format=%H"),
        "branches": "\n".join(
            line
            for line in git(repo, "for-each-ref", "refs/heads", "refs/tags").splitlines()
            if "refs/heads/tars-bot/" not in line
        ),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain"),
    }


def check_recovery(repo: Path, before: dict[str, str], improvement: str = "crash") -> None:
    assert user_state(repo) == before
    recover = run_tars(repo, "recover")
    assert recover.returncode == 0, recover.stderr
    assert user_state(repo) == before
    history = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    assert all(e["state"] not in ("running", "validating") and not e["pending"] for e in history)
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # pool cleared
    assert not (repo / ".git" / "tars-bot" / "worktrees").exists() or not any(
        (repo / ".git" / "tars-bot" / "worktrees").iterdir()
    )
    assert git(repo, "for-each-ref", "refs/tars-bot/locks", "refs/tars-bot/pool") == ""
    again = run_tars(repo, "recover").stdout
    assert again.strip() == "nothing to recover"

    final = run_tars(repo, "execute", "--improvement-id", improvement)
    assert final.returncode == 0, final.stdout + final.stderr
    if improvement == "crash":
        assert git(repo, "show", "tars-bot/crash:src/util.py") == "X = 10"
    assert user_state(repo) == before


# Split privilege: clones of an origin, bundles and what was pushed


def clone(origin: Path, name: str) -> Path:
    path = origin.parent / name
    git(origin.parent, "clone", "-q", str(origin), str(path))
    return path


def pushed(origin: Path) -> str:
    return git(
        origin, "for-each-ref", "--format=%(refname)", "refs/heads/tars-bot", "refs/tars-bot"
    )


def receive(origin: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    publisher = clone(origin, f"publisher-{bundle.stem}")
    return run_tars(publisher, "receive", "--bundle", str(bundle), "--improvement-id", "imp", *args)


def tampered(runner: Path, execution_id: str, tip: str, name: str, *extra_refs: str) -> Path:
    """A bundle of the branch moved to `tip`, with a journal that says it ends there."""
    journal = f"refs/tars-bot/executions/{execution_id}"
    record = git(runner, "rev-parse", journal)
    text = git(runner, "show", f"{record}:execution.json").replace(
        git(runner, "rev-parse", "tars-bot/imp"), tip
    )
    forged = commit_on(runner, record, {"execution.json": text}, "succeeded")
    git(runner, "update-ref", journal, forged)
    git(runner, "update-ref", "refs/heads/tars-bot/imp", tip)
    bundle = runner.parent / f"{name}.bundle"
    base = git(runner, "rev-parse", "origin/main")
    git(
        runner,
        "bundle",
        "create",
        "-q",
        str(bundle),
        "refs/heads/tars-bot/imp",
        journal,
        *extra_refs,
        f"^{base}",
    )
    return bundle


def commit_on(runner: Path, parent: str, files: dict[str, str], message: str) -> str:
    """A commit on `parent` with `files` changed, made by hand (not by tars-bot)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(runner / ".git" / "hand-index")}
    subprocess.run(["git", "-C", str(runner), "read-tree", parent], env=env, check=True)
    for path, content in files.items():
        blob = subprocess.run(
            ["git", "-C", str(runner), "hash-object", "-w", "--stdin"],
            input=content, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        subprocess.run(
            ["git", "-C", str(runner), "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"],
            env=env, check=True,
        )  # fmt: skip
    tree = subprocess.run(
        ["git", "-C", str(runner), "write-tree"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return git(runner, "commit-tree", tree, "-p", parent, "-m", message)


# GitHub: events for the Action against the fake GitHub

PAYLOAD = json.loads((Path(__file__).parent / "data" / "issue_comment.json").read_text())


ISSUE_IMPROVEMENT = """\
Please make the IO code read UTF-8.

```yaml
steps:
  - {name: encoding, edit: {path: src/io.py, search: "open(path)", replace: "open(path, encoding='utf-8')"}}
  - {name: notes, write: {path: NOTES.md, content: "UTF-8 everywhere\\n"}}
```
"""


def environ(fake_github, tmp_path: Path, event: str, payload: dict) -> dict[str, str]:
    path = tmp_path / f"event-{len(list(tmp_path.glob('event-*')))}.json"
    path.write_text(json.dumps(payload))
    return {
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(path),
    }


def comment_payload(repo, number: int, body: str, user: str = "writer", **changes) -> dict:
    comment = repo.add_comment(number, body, user)
    payload = json.loads(json.dumps(PAYLOAD))
    payload["comment"].update(
        id=comment.id, body=body, user={**payload["comment"]["user"], "login": user}
    )
    issue = repo.issues[number]
    payload["issue"] |= {"number": number, "title": issue.title, "body": issue.body}
    payload["issue"]["user"] = {**payload["issue"]["user"], "login": issue.user, "type": "User"}
    if not issue.is_pull:
        payload["issue"]["pull_request"] = None
    payload["repository"]["full_name"] = "octo/app"
    payload.update(changes)
    return payload


def run_action(fake_github, tmp_path, checkout, event, payload) -> int:
    env = environ(fake_github, tmp_path, event, payload)
    return action.run(
        env, checkout, lambda e: GitHubClient.from_env(e, sleep=lambda s: None, pace=False)
    )


def stage(
    fake_github, tmp_path: Path, checkout: Path, name: str, payload: dict, event="issue_comment"
) -> int:
    env = environ(fake_github, tmp_path, event, payload)
    env |= {"TARS_BOT_STAGE": name, "TARS_BOT_HANDOFF": str(tmp_path / "handoff")}
    env["GITHUB_OUTPUT"] = str(tmp_path / f"output-{name}")
    client = lambda e: GitHubClient.from_env(e, sleep=lambda s: None, pace=False)  # noqa: E731
    return action.run(env, checkout, client)


def job_checkout(origin: Path, name: str) -> Path:
    """What actions/checkout leaves for one job: a fresh clone of the default branch."""
    path = origin.parent / name
    git(origin.parent, "clone", "-q", str(origin), str(path))
    return path


def reactions(repo, comment_id: int) -> list[str]:
    return [r.content for r in repo.comments[comment_id].reactions]
