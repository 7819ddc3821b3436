"""Change Validator: nox sessions of the target repository, cached by tree, and bisection."""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import cast

from tars_bot.config import Config
from tars_bot.errors import TarsError
from tars_bot.execution.processes import ProcessResult
from tars_bot.execution.readback import UnsafeOutput
from tars_bot.execution.sandbox import (
    Jail,
    Sandbox,
    SandboxFailed,
    Scratch,
    open_sandbox,
    python_tool,
)
from tars_bot.execution.workspace import ENVS, OWN_ENVS, guard
from tars_bot.git import NewContent, RefConflict, Repo, Worktree
from tars_bot.models import CheckResult, Limits, TestReport
from tars_bot.validation import search, tests_results

NOXFILE = "noxfile.py"
CACHE = "refs/tars-bot/checks"  # a commit whose tree holds results: <tree[:2]>/<tree>/<key>.json
CACHE_ATTEMPTS = 8
# a check leaves no __pycache__ behind in the worktree (where a repository that does not ignore
# it would see the next run step change files outside its scope)
NO_BYTECODE = {"PYTHONDONTWRITEBYTECODE": "1"}
# files whose change means a session's virtualenv must be rebuilt
DEPENDENCY_FILES = ("noxfile.py", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")
OUTPUT_TAIL_LINES = 40
SEALED = "sealed-envs-1"
RESULTS = "per-test-1"  # results carry per-test outcomes (tests_results.py)
LIST_TIMEOUT_S = 120
LIST_MEMORY_MB = 2048
# nox's own errors, and pip's, uv's or git's (a hook runner fetching its hooks) when a host
# cannot be reached: never a test failure, unless tests ran and failed (tests_results judges)
_INFRASTRUCTURE = re.compile(
    r"nox > Session \S+ raised exception .*|.*(?:No matching distribution found|"
    r"Could not find a version that satisfies|Failed to establish a new connection|"
    r"Temporary failure in name resolution|CERTIFICATE_VERIFY_FAILED|invalid peer certificate|"
    r"Network is unreachable|ReadTimeoutError|Could not resolve host).*"
)
_LISTING = f"nox-{version('nox')}-all"  # the cache key names how sessions were discovered
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


def _run_list(
    sandbox: Sandbox, repo: Repo, tree: str, alone: bool
) -> tuple[list[dict[str, object]], bool]:
    """nox's session list for the noxfile of `tree`, run on a copy of it, and whether the
    noxfile listed alone. It is tried alone first (cheap whatever the repository's size), then
    with the whole tree: noxfiles import from it or read files such as pyproject.toml
    (`nox.project.load_toml`). The user's checkout stays hidden."""
    with sandbox.scratch() as scratch:
        proc = None
        if alone:
            where = scratch.host / "noxfile"
            where.mkdir()
            (where / NOXFILE).write_bytes(repo.read(tree, NOXFILE) or b"")
            proc = _list_in(sandbox, where, scratch)
        if proc is None or proc.exit_code != 0:
            alone = False
            where = scratch.host / "tree"
            repo.export(tree, where)
            proc = _list_in(sandbox, where, scratch)
    output = proc.output.decode(errors="replace")
    if proc.exit_code != 0 or proc.timed_out:
        detail = (output.strip().splitlines() or ["no output"])[-1]
        raise TarsError(f"{NOXFILE}: nox cannot list its sessions: {detail}")
    try:  # the JSON is the last line; a noxfile may print before it
        sessions = json.loads(output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise TarsError(f"{NOXFILE}: nox printed no session list: {output[-200:]}") from None
    return cast(list[dict[str, object]], sessions), alone


def _list_in(sandbox: Sandbox, where: Path, scratch: Scratch) -> ProcessResult:
    # nox has no stable Python API (nox.main reads sys.argv and exits), so it runs as a process.
    # A keyword expression that every session matches lists the ones with default=False too.
    command = [*python_tool("nox"), "--list", "--json", "-k", "True", "-f", NOXFILE]
    jail = Jail(cwd=where, writable=(where,))
    return sandbox.run(command, jail, LIST_TIMEOUT_S, LIST_MEMORY_MB, scratch=scratch)


def list_sessions(repo: Repo, tree: str, sandbox: Sandbox) -> NoxSessions | None:
    """Every session of the noxfile in `tree` (default or not), or None without one. Cached by
    noxfile blob and how they were discovered, or by tree when the noxfile needs its tree."""
    blob = repo.blob_id(tree, NOXFILE)
    if blob is None:
        return None
    cache_dir = repo.git_dir / "tars-bot" / "cache" / "nox-list"
    needs_tree = cache_dir / f"{blob}-{_LISTING}.needs-tree"
    alone = not needs_tree.exists()
    cache = cache_dir / (f"{blob}-{_LISTING}.json" if alone else f"{blob}-{tree}-{_LISTING}.json")
    if cache.is_file():
        sessions = json.loads(cache.read_text())
    else:
        sessions, listed_alone = _run_list(sandbox, repo, tree, alone)
        cache_dir.mkdir(parents=True, exist_ok=True)
        if not listed_alone:
            needs_tree.touch()
            cache = cache_dir / f"{blob}-{tree}-{_LISTING}.json"
        partial = cache.with_suffix(".tmp")
        partial.write_text(json.dumps(sessions))
        partial.replace(cache)  # atomic: a killed process never leaves half a file
    names = {str(s["name"]) for s in sessions} | {str(s["session"]) for s in sessions}
    tags = {str(tag) for s in sessions for tag in cast(list[object], s.get("tags") or [])}
    return NoxSessions(frozenset(names), frozenset(tags))


def dependency_key(repo: Repo, tree: str) -> str:
    """The folder (under ENVS) of the nox environments for `tree`'s dependency files."""
    ids = "".join(repo.blob_id(tree, name) or "-" for name in DEPENDENCY_FILES)
    return hashlib.sha256(ids.encode()).hexdigest()[:16]


def _cache_path(tree: str, check: str, options: str) -> str:
    # "sealed": run where no earlier execution could change the environment (results from
    # shared, writable environments are never believed again)
    runner = f"{check}\0nox {version('nox')}\0python {sys.version_info[:2]}\0{SEALED}\0{RESULTS}"
    runner += f"\0{options}"
    return f"{tree[:2]}/{tree}/{hashlib.sha256(runner.encode()).hexdigest()[:20]}.json"


def _summary(output: str) -> str:
    found = _PYTEST_SUMMARY.findall(output)
    return found[-1].strip() if found else ""


def _tail(output: bytes, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(output.decode(errors="replace").rstrip().splitlines()[-lines:])


@dataclass
class Validator:
    """Runs nox sessions on commits of one execution, in one worktree moved from commit to
    commit; every result is cached in git by (tree, check, runner digest).

    nox's environments never take what a check writes. One is built by tars-bot (nox
    --install-only) for each set of dependency files, then sealed: checks see it read-only,
    their writes (installs included) going to a layer thrown away after the run. The base's
    environments are built on the base commit and shared between executions; one for
    dependency files the improvement changed lives only as long as this validator."""

    repo: Repo
    config: Config
    limits: Limits
    checkout: Callable[[], Worktree]
    base: str
    on_output: Callable[[bytes], None] | None = None
    # for a live display and the execution's record: each check, run or cached, on each commit
    on_check_started: Callable[[str, str], None] | None = None  # (check, commit)
    on_check_finished: Callable[[str, CheckResult], None] | None = None  # (commit, result)
    runs: dict[str, int] = field(default_factory=dict)  # nox runs per check, for reports
    fresh: bool = False  # run even where a result is cached (and replace it)
    sandbox: Sandbox = field(init=False)
    _own_envs: Path | None = field(init=False, default=None)
    _base_dependencies: str = field(init=False)
    _on_base: dict[str, CheckResult] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.sandbox = open_sandbox(self.config, self.repo)
        self._base_dependencies = self._dependencies(self.repo.tree_of(self.base))

    def close(self) -> None:
        """Remove the environments made for this validator's own dependency files."""
        if self._own_envs is not None:
            shutil.rmtree(self._own_envs, ignore_errors=True)

    def run(self, commit: str, checks: list[str]) -> list[CheckResult]:
        return [self._check(commit, check) for check in checks]

    def on_base(self, check: str) -> CheckResult:
        """`check` on the base commit, run once per validator whatever its result (an error
        is never cached in git, yet per-step and final checks alike compare with it)."""
        if check not in self._on_base:
            self._on_base[check] = self._check(self.base, check)
        return self._on_base[check]

    def _options(self, check: str) -> str:
        """What of the configuration changes a check's run: its posargs and the deselected."""
        return json.dumps([self.config.posargs.get(check, []), self.config.deselect])

    def cached(self, tree: str, check: str) -> CheckResult | None:
        head = self.repo.ref(CACHE)
        path = _cache_path(tree, check, self._options(check))
        data = self.repo.commit_file(head, path) if head else None
        if data is None:
            return None
        return CheckResult.model_validate_json(data).model_copy(update={"cached": True})

    def _store(self, result: CheckResult) -> None:
        """Add the result to the cache: one ref whose tree holds every result, moved by
        compare-and-swap (retried when another execution stored one meanwhile)."""
        path = _cache_path(result.tree, result.check, self._options(result.check))
        change = {path: NewContent(result.model_dump_json().encode())}
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
        if self.on_check_started:
            self.on_check_started(check, commit)
        tree = self.repo.tree_of(commit)
        result = None if self.fresh else self.cached(tree, check)
        if result is None:
            result = self._run_nox(commit, tree, check)
            if result.status != "error":  # a check that could not run says nothing of the tree
                self._store(result)
        if self.on_check_finished:
            self.on_check_finished(commit, result)
        return result

    def _dependencies(self, tree: str) -> str:
        return dependency_key(self.repo, tree)

    def _environment(self, commit: str, tree: str, check: str) -> tuple[Path, _Run | None]:
        """The sealed environments for `check` on `tree`, built first when missing; (where,
        the build's run when it failed)."""
        key = self._dependencies(tree)
        if key == self._base_dependencies:
            envdir, build_on = self.repo.git_dir / ENVS / key, self.base
        else:
            if self._own_envs is None:
                (self.repo.git_dir / ENVS).mkdir(parents=True, exist_ok=True)
                self._own_envs = Path(
                    tempfile.mkdtemp(prefix=OWN_ENVS, dir=self.repo.git_dir / ENVS)
                )
            envdir, build_on = self._own_envs / key, commit
        seal = envdir.with_name(f"{envdir.name}.{hashlib.sha256(check.encode()).hexdigest()[:12]}")
        envdir.mkdir(parents=True, exist_ok=True)
        with Path(f"{envdir}.lock").open("a") as lock:  # one builder at a time, across processes
            fcntl.flock(lock, fcntl.LOCK_EX)
            if seal.is_file():
                return envdir, None
            built = self._nox(build_on, check, envdir, sealed=False, install_only=True)
            if built.process.exit_code != 0 or built.process.timed_out or built.tampered:
                return envdir, built  # judged as the check's own run would be
            seal.write_text(build_on)
        return envdir, None

    def _nox(
        self, commit: str, check: str, envdir: Path, *, sealed: bool, install_only: bool = False
    ) -> _Run:
        """nox for `check` on `commit`, with `envdir` sealed (read-only, writes discarded) or
        writable (only while tars-bot builds it)."""
        worktree = self.checkout()
        worktree.move_to(commit)
        selector = ["-t", check.removeprefix("tag:")] if check.startswith("tag:") else ["-s", check]
        jail = Jail.worktree_of(
            worktree.path,
            network=self.config.check_network,
            overlays=(envdir,) if sealed else (),
            writable=() if sealed else (envdir,),
            max_file_mb=self.config.check_max_file_mb,
        )
        with self.sandbox.scratch() as scratch:
            given = [] if install_only else self.config.posargs.get(check, [])
            posargs = ["--", *given] if given else []
            command = [
                *python_tool("nox"), "--non-interactive", "--no-color", "-f", NOXFILE,
                *selector, "--report", scratch.output("nox-report.json"),
                "--envdir", str(envdir), "--reuse-venv=yes",
                *(["--install-only"] if install_only else []), *posargs,
            ]  # fmt: skip
            sandboxed, prefix = self.sandbox.bwrap is not None, self.config.branch_prefix
            with guard(self.repo, worktree.path, [], sandboxed, prefix) as guarded:
                proc = self.sandbox.run(
                    command, jail, self.config.check_timeout, self.limits.memory_mb,
                    scratch=scratch, env=self._env(scratch),
                    on_output=None if install_only else self.on_output,
                )  # fmt: skip
            report = scratch.read("nox-report.json")
            tests = (None, None) if install_only else _tests(scratch)
        sessions = json.loads(report)["sessions"] if report else []
        return _Run(proc, sessions, guarded.tampered, tests)

    def _env(self, scratch: Scratch) -> dict[str, str]:
        """The run's own variables: a JUnit report asked of pytest, after any options the
        environment passed in has (nox hands its environment on to the session)."""
        outer = self.sandbox.environment(scratch, {}).get("PYTEST_ADDOPTS", "")
        junit = scratch.output(tests_results.JUNIT)
        addopts = tests_results.pytest_addopts(outer, junit, self.config.deselect)
        return {**NO_BYTECODE, "PYTEST_ADDOPTS": addopts}

    def _run_nox(self, commit: str, tree: str, check: str) -> CheckResult:
        self.runs[check] = self.runs.get(check, 0) + 1
        timeout = self.config.check_timeout
        try:
            envdir, failed_build = self._environment(commit, tree, check)
            run = failed_build or self._nox(commit, check, envdir, sealed=True)
        except (SandboxFailed, UnsafeOutput, json.JSONDecodeError) as e:  # nothing of the tree
            return CheckResult(check=check, status="error", tree=tree, duration_s=0, summary=str(e))
        proc, output = run.process, _tail(run.process.output)
        tests, refused = run.tests
        status, summary = _verdict(proc, run.sessions, output, timeout, tests)
        if tests and summary in ("", "session failed") and tests_results.explains(tests, status):
            summary = tests_results.summary(tests) or summary  # pytest -q prints no ===
        if refused:
            output += f"\ntars-bot: per-test results not used: {refused}"
        if run.tampered:  # the tree's own code did it: a failure of that tree
            status, summary, tests = "failed", run.tampered, None
        return CheckResult(
            check=check,
            status=status,
            tree=tree,
            duration_s=proc.duration_s,
            summary=summary,
            output=output,
            tests=tests or tests_results.from_summary(summary),
        )

    def first_failing(
        self,
        commits: list[str],
        failing: CheckResult,
        is_bad: Callable[[CheckResult], bool | None],
        weights: Sequence[float] | None = None,
    ) -> tuple[int, CheckResult]:
        """The index in `commits` of the first commit whose result `is_bad`, knowing the last
        one's (`failing`) is and the base's is not, and the result there. Bisection, or with
        `weights` (each step's chance of being the culprit) the search with the fewest expected
        runs (search.py). A run that errors, or that `is_bad` cannot judge (None), ends the
        search and is returned: it tells nothing of its commit, so no commit can be blamed."""
        results = {len(commits) - 1: failing}

        def fails(index: int) -> bool:
            results[index] = self._check(commits[index], failing.check)
            bad = None if results[index].status == "error" else is_bad(results[index])
            if bad is None:
                raise _Errored(index)
            return bad

        try:
            bad = search.first_failing(len(commits), fails, weights)
        except _Errored as e:
            return e.index, results[e.index]
        return bad, results[bad]


@dataclass(frozen=True)
class _Run:
    process: ProcessResult
    sessions: list[dict[str, object]]
    tampered: str | None  # what the run did to git's own state (put back)
    tests: tuple[TestReport | None, str | None] = (None, None)  # (per-test results, refused why)


def _tests(scratch: Scratch) -> tuple[TestReport | None, str | None]:
    """The JUnit report pytest wrote, if any: (its results, or None and why it was refused)."""
    try:
        data = scratch.read(tests_results.JUNIT, tests_results.JUNIT_MAX_BYTES)
        return (tests_results.parse_junit(data) if data is not None else None), None
    except UnsafeOutput as e:
        return None, str(e)
    except tests_results.BadReport as e:
        return None, f"{tests_results.JUNIT}: {e}"


class _Errored(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


def _infrastructure(output: str) -> str | None:
    """What in a failed session's output says the machine, not the tree, failed it: nox's own
    exception (a missing venv backend), or a package index that could not be reached."""
    found = _INFRASTRUCTURE.search(output)
    return found.group(0).strip() if found else None


def _verdict(
    proc: ProcessResult,
    sessions: list[dict[str, object]],
    output: str,
    timeout: int,
    tests: TestReport | None,
) -> tuple[str, str]:
    if proc.timed_out:  # says nothing of the tree: a slow index or machine is no test failure
        return "error", f"timed out after {timeout}s (check_timeout)"
    results = [str(s.get("result")) for s in sessions]
    reasons = [str(s.get("reason")) for s in sessions if s.get("result") == "skipped"]
    if proc.exit_code == 2 or not sessions:
        return "error", "nox could not load the noxfile or select the session"
    if "failed" in results or "aborted" in results:
        ran = tests is not None and tests.failed + tests.errors > 0  # what they printed aside
        if not ran and (cause := _infrastructure(proc.output.decode(errors="replace"))):
            return "error", f"could not set up the session: {cause}"
        return "failed", _summary(output) or "session failed"
    if all(r == "skipped" for r in results):
        return "error", "; ".join(reasons)  # e.g. a missing interpreter is not a test failure
    return "passed", _summary(output)
