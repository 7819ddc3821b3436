"""Change Validator: nox sessions of the target repository, cached by tree, and bisection."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from tars_bot import workspace
from tars_bot.config import Config
from tars_bot.errors import TarsError
from tars_bot.git import NewContent, RefConflict, Repo, Worktree
from tars_bot.models import CheckResult, Limits

NOXFILE = "noxfile.py"
CACHE = "refs/tars-bot/checks"  # a commit whose tree holds results: <tree[:2]>/<tree>/<key>.json
CACHE_ATTEMPTS = 8
# files whose change means a session's virtualenv must be rebuilt
DEPENDENCY_FILES = ("noxfile.py", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")
OUTPUT_TAIL_LINES = 40
_PYTEST_SUMMARY = re.compile(r"^=+ (.*\d+ (?:passed|failed|error|errors)[^=]*?) in [\d.]+s", re.M)


@dataclass(frozen=True)
class NoxSessions:
    names: frozenset[str]  # both `tests` and its parametrized `tests-3.11`
    tags: frozenset[str]

    def missing(self, check: str) -> str | None:
        """Why `check` (a session name or tag:NAME) selects nothing, or None when it selects."""
        if check.startswith("tag:"):
            tag = check.removeprefix("tag:")
            return None if tag in self.tags else f"no nox session is tagged {tag!r}"
        return None if check in self.names else f"no nox session named {check!r}"

    def describe(self) -> str:
        return ", ".join(sorted(self.names)) or "none"


def _run_list(noxfile: Path) -> list[dict[str, object]]:
    # nox has no stable Python API (nox.main reads sys.argv and exits), so it runs as a process.
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-f", str(noxfile)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=noxfile.parent,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TarsError(f"{NOXFILE}: nox cannot list its sessions: {detail}")
    return json.loads(proc.stdout)


def list_sessions(repo: Repo, tree: str) -> NoxSessions | None:
    """The sessions of the noxfile in `tree`, or None without one. Cached by noxfile blob."""
    blob = repo.blob_id(tree, NOXFILE)
    if blob is None:
        return None
    cache = repo.git_dir / "tars-bot" / "cache" / "nox-list" / f"{blob}-{version('nox')}.json"
    if cache.is_file():
        sessions = json.loads(cache.read_text())
    else:
        workdir_noxfile = repo.workdir / NOXFILE
        if workdir_noxfile.is_file() and repo.hash_file(workdir_noxfile) == blob:
            sessions = _run_list(workdir_noxfile)  # same content, and its local imports resolve
        else:
            with tempfile.TemporaryDirectory() as tmp:
                noxfile = Path(tmp) / NOXFILE
                noxfile.write_bytes(repo.read(tree, NOXFILE) or b"")
                sessions = _run_list(noxfile)
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".tmp")
        partial.write_text(json.dumps(sessions))
        partial.replace(cache)  # atomic: a killed process never leaves half a file
    names = {str(s["name"]) for s in sessions} | {str(s["session"]) for s in sessions}
    tags = {str(tag) for s in sessions for tag in s.get("tags") or []}  # type: ignore[attr-defined]
    return NoxSessions(frozenset(names), frozenset(tags))


def _cache_path(tree: str, check: str) -> str:
    runner = f"{check}\0nox {version('nox')}\0python {sys.version_info[:2]}"
    return f"{tree[:2]}/{tree}/{hashlib.sha256(runner.encode()).hexdigest()[:20]}.json"


def _summary(output: str) -> str:
    found = _PYTEST_SUMMARY.findall(output)
    return found[-1].strip() if found else ""


def _tail(output: bytes) -> str:
    return "\n".join(output.decode(errors="replace").rstrip().splitlines()[-OUTPUT_TAIL_LINES:])


@dataclass
class Validator:
    """Runs nox sessions on commits of one execution, in one worktree moved from commit to
    commit; every result is cached in git by (tree, check, runner digest)."""

    repo: Repo
    config: Config
    limits: Limits
    checkout: Callable[[], Worktree]
    on_output: Callable[[bytes], None] | None = None
    runs: dict[str, int] = field(default_factory=dict)  # nox runs per check, for reports

    def run(self, commit: str, checks: list[str]) -> list[CheckResult]:
        return [self._check(commit, check) for check in checks]

    def cached(self, tree: str, check: str) -> CheckResult | None:
        head = self.repo.ref(CACHE)
        data = self.repo.commit_file(head, _cache_path(tree, check)) if head else None
        if data is None:
            return None
        return CheckResult.model_validate_json(data).model_copy(update={"cached": True})

    def _store(self, result: CheckResult) -> None:
        """Add the result to the cache: one ref whose tree holds every result, moved by
        compare-and-swap (retried when another execution stored one meanwhile)."""
        change = {
            _cache_path(result.tree, result.check): NewContent(result.model_dump_json().encode())
        }
        for _ in range(CACHE_ATTEMPTS):
            head = self.repo.ref(CACHE)
            tree = self.repo.build_tree(self.repo.tree_of(head) if head else None, change)
            # no parent: only the latest tree matters, and old ones may be collected
            commit = self.repo.create_commit(tree, [], "tars-bot check results")
            try:
                self.repo.update_ref(CACHE, commit, head)
                return
            except RefConflict:
                continue

    def _check(self, commit: str, check: str) -> CheckResult:
        tree = self.repo.tree_of(commit)
        if (hit := self.cached(tree, check)) is not None:
            return hit
        result = self._run_nox(commit, tree, check)
        if result.status != "error":  # a check that could not run says nothing of the tree
            self._store(result)
        return result

    def _envdir(self, tree: str) -> Path:
        ids = "".join(self.repo.blob_id(tree, name) or "-" for name in DEPENDENCY_FILES)
        digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
        return self.repo.git_dir / "tars-bot" / "nox" / digest

    def _run_nox(self, commit: str, tree: str, check: str) -> CheckResult:
        worktree = self.checkout()
        worktree.move_to(commit)
        self.runs[check] = self.runs.get(check, 0) + 1
        selector = ["-t", check.removeprefix("tag:")] if check.startswith("tag:") else ["-s", check]
        with workspace.step_home() as home:
            report = home / "nox-report.json"
            command = [
                sys.executable, "-m", "nox", "--non-interactive", "--no-color",
                "-f", NOXFILE, *selector, "--report", str(report),
                "--envdir", str(self._envdir(tree)), "--reuse-venv=yes",
            ]  # fmt: skip
            env = workspace.step_environment(self.config.pass_env, {}, home)
            proc = workspace.run_process(
                command,
                worktree.path,
                env,
                self.limits,
                allow_network=True,  # sessions install their dependencies
                on_output=self.on_output,
            )
            sessions = json.loads(report.read_text())["sessions"] if report.is_file() else []
        output = _tail(proc.output)
        status, summary = _verdict(proc, sessions, output)
        return CheckResult(
            check=check,
            status=status,
            tree=tree,
            duration_s=proc.duration_s,
            summary=summary,
            output=output,
        )

    def first_failing(self, base: str, commits: list[str], check: str) -> int | None:
        """Bisect: the index in `commits` of the first commit where `check` fails, knowing it
        fails on the last one; None when it fails on `base` already."""
        good, bad = -1, len(commits) - 1  # -1 stands for the base, assumed good until checked
        while bad - good > 1:
            middle = (good + bad) // 2
            if self._check(commits[middle], check).passed:
                good = middle
            else:
                bad = middle
        if bad == 0 and not self._check(base, check).passed:
            return None
        return bad


def _verdict(
    proc: workspace.ProcessResult, sessions: list[dict[str, object]], output: str
) -> tuple[str, str]:
    if proc.timed_out:
        return "failed", "timed out"
    results = [str(s.get("result")) for s in sessions]
    reasons = [str(s.get("reason")) for s in sessions if s.get("result") == "skipped"]
    if proc.exit_code == 2 or not sessions:
        return "error", "nox could not load the noxfile or select the session"
    if "failed" in results or "aborted" in results:
        return "failed", _summary(output) or "session failed"
    if all(r == "skipped" for r in results):
        return "error", "; ".join(reasons)  # e.g. a missing interpreter is not a test failure
    return "passed", _summary(output)
