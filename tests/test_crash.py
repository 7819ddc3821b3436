"""Crash safety: `tars-bot execute` killed with SIGKILL anywhere, then `tars-bot recover`.

Each case kills a real process, either at a named fault point (TARS_BOT_FAULT) or at a random
moment, and then checks that the user's repository is byte-identical, that `recover` leaves no
running execution, worktree or lock, and that executing the improvement again succeeds.
"""

from __future__ import annotations

import json
import random
import signal
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import (
    add_improvement,
    check_recovery,
    commit_files,
    git,
    leftover_worktrees,
    run_tars,
    start_tars,
    user_state,
    wait_until,
    write_files,
)

FILES = {
    "pyproject.toml": '[tool.tars-bot]\ncomponents = { core = ["src/**"] }\n',
    "src/app.py": "def main():\n    return 1\n",
    "src/util.py": "X = 1\n",
}
IMPROVEMENT = """\
title: crash me
target_components: [core]
steps:
  - {name: edit, edit: {path: src/app.py, search: "return 1", replace: "return 2"}}
  - {name: generate, run: "echo 'Y = 2' > src/gen.py"}
  - {name: write, write: {path: src/new.py, content: "Z = 3\\n"}}
  - name: patch
    patch: |
      --- a/src/util.py
      +++ b/src/util.py
      @@ -1 +1 @@
      -X = 1
      +X = 10
"""

# An execution of IMPROVEMENT meets: 10 journal updates, 4 step commits, a worktree, and 15
# ref updates (journal, branch, lock). 30 kills at named points, plus those at random moments.
FAULTS = [
    *(f"before-journal-update:{n}" for n in range(1, 11)),
    *(f"after-journal-update:{n}" for n in (1, 2, 4, 6, 8, 10)),
    "after-worktree-add",
    *(f"after-step-commit:{n}" for n in range(1, 5)),
    *(f"before-ref-update:{n}" for n in (1, 3, 7, 11, 15)),
    *(f"after-ref-update:{n}" for n in (1, 5, 9, 14)),
]


@pytest.fixture
def crash_repo(make_repo) -> Path:
    repo = make_repo(FILES)
    add_improvement(repo, IMPROVEMENT, "crash.yaml")
    git(repo, "add", ".tars")
    commit_files(repo, {}, "improvement")
    write_files(repo, {"src/util.py": "X = 'stashed'\n"})
    git(repo, "stash")
    git(repo, "branch", "feature")
    write_files(repo, {"src/app.py": "# unstaged\n", "staged.txt": "staged\n"})
    git(repo, "add", "staged.txt")
    return repo


@pytest.mark.parametrize("fault", FAULTS)
def test_killed_at_a_fault_point(crash_repo, fault):
    before = user_state(crash_repo)
    proc = run_tars(crash_repo, "execute", "--improvement-id", "crash", fault=fault)
    assert proc.returncode == -signal.SIGKILL, f"{fault} not reached: {proc.stdout}{proc.stderr}"
    check_recovery(crash_repo, before)


def test_killed_in_the_middle_of_a_rollback(crash_repo):
    before = user_state(crash_repo)
    assert run_tars(crash_repo, "execute", "--improvement-id", "crash").returncode == 0
    [execution] = json.loads(run_tars(crash_repo, "history", "--format", "json").stdout)
    proc = run_tars(crash_repo, "rollback", "--execution-id", execution["id"], fault="mid-rollback")
    assert proc.returncode == -signal.SIGKILL
    check_recovery(crash_repo, before)
    status = run_tars(crash_repo, "status", "--execution-id", execution["id"], "--format", "json")
    rolled = json.loads(status.stdout)
    assert rolled["state"] == "rolled_back"


@pytest.mark.parametrize("seed", range(12))
def test_killed_at_a_random_moment(crash_repo, seed):
    before = user_state(crash_repo)
    proc = start_tars(crash_repo, "execute", "--improvement-id", "crash")
    time.sleep(random.Random(seed).uniform(0.15, 0.9))  # a random instant of the run
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    check_recovery(crash_repo, before)


def test_eight_concurrent_executions(make_repo):
    repo = make_repo(FILES)
    for n in range(8):
        add_improvement(
            repo,
            f"title: c{n}\nsteps:\n  - {{name: w, write: {{path: src/c{n}.py, content: 'N = {n}'}}}}\n"
            f"  - {{name: r, run: 'echo {n} > src/r{n}.txt'}}\n",
            f"c{n}.yaml",
        )
    procs = [start_tars(repo, "execute", "--improvement-id", f"c{n}") for n in range(8)]
    outputs = [proc.communicate(timeout=120) for proc in procs]  # all of them, then judge
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
    history = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    assert sorted(e["improvement"] for e in history) == [f"c{n}" for n in range(8)]
    assert all(e["state"] == "succeeded" for e in history)
    assert len({e["id"] for e in history}) == 8
    for n in range(8):
        assert git(repo, "show", f"tars-bot/c{n}:src/r{n}.txt") == str(n)
        assert git(repo, "show", f"tars-bot/c{n}:src/c{n}.py") == f"N = {n}"
    assert leftover_worktrees(repo) == []


VALIDATED = """\
title: validated, with a step to drop
target_components: [core]
validation: {final: [tests]}
on_failure: drop-step
steps:
  - {name: a, write: {path: src/a.txt, content: ok}}
  - {name: b, write: {path: src/b.txt, content: BAD}}
  - {name: c, write: {path: src/c.txt, content: ok}}
"""
NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "import pathlib, sys; sys.exit('BAD' in ''.join(p.read_text() for p in pathlib.Path('src').glob('*.txt')))")
"""


@pytest.mark.parametrize(
    "fault",
    # 7 saves for the steps, then: validating (8), the tip's checks (9), the drop-step's
    # journaled intent (10), the revert recorded (11), the checks again (12)
    ["after-journal-update:8", "after-journal-update:9", "before-journal-update:10",
     "after-journal-update:10", "after-journal-update:11", "before-journal-update:12"],
)  # fmt: skip
def test_killed_while_validating_and_dropping_a_step(crash_repo, fault):
    add_improvement(crash_repo, VALIDATED, "checked.yaml")
    (crash_repo / "noxfile.py").write_text(NOXFILE)
    git(crash_repo, "add", "noxfile.py", ".tars/improvements/checked.yaml")
    git(crash_repo, "commit", "-qm", "validated improvement")
    before = user_state(crash_repo)
    proc = run_tars(crash_repo, "execute", "--improvement-id", "checked", fault=fault)
    assert proc.returncode == -signal.SIGKILL, f"{fault} not reached: {proc.stdout}{proc.stderr}"
    check_recovery(crash_repo, before, "checked")
    files = git(crash_repo, "ls-tree", "--name-only", "tars-bot/checked", "src/").split()
    assert "src/a.txt" in files and "src/c.txt" in files and "src/b.txt" not in files


def test_recover_removes_the_environments_a_killed_execution_built(make_repo):
    """An improvement that changes a dependency file gets environments of its own (under
    `.git/tars-bot/nox/own-*`); killed while they are in use, nothing else would delete them."""
    noxfile = textwrap.dedent("""\
        import nox

        @nox.session(venv_backend="none")
        def tests(session):
            session.run("python", "-c", "import time; time.sleep(60)")
        """)
    repo = make_repo({"noxfile.py": noxfile, "pyproject.toml": '[project]\nname = "p"\n'})
    add_improvement(
        repo,
        "title: deps\nvalidation: {final: [tests]}\nsteps:\n"
        "  - {name: d, edit: {path: pyproject.toml, search: '\"p\"', replace: '\"q\"'}}\n",
        "deps.yaml",
    )
    git(repo, "add", ".tars")
    commit_files(repo, {}, "improvement")
    envs = repo / ".git" / "tars-bot" / "nox"
    proc = start_tars(repo, "execute", "--improvement-id", "deps")
    wait_until(lambda: list(envs.glob("own-*")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)

    recover = run_tars(repo, "recover")
    assert recover.returncode == 0, recover.stderr
    assert "removed the environments a killed execution built (own-" in recover.stdout
    assert not list(envs.glob("own-*"))
    assert "environments" not in run_tars(repo, "recover").stdout  # nothing left the second time


# Gates: a parked execution has no process, and recover must never roll it back; a resume
# killed anywhere keeps its approval, and the next resume continues exactly once.

GATED = """\
title: gated crash
target_components: [core]
approval: each_step
steps:
  - {name: edit, edit: {path: src/app.py, search: "return 1", replace: "return 2"}}
  - {name: generate, run: "echo 'Y = 2' > src/gen.py"}
  - {name: write, write: {path: src/new.py, content: "Z = 3\\n"}}
"""


@pytest.fixture
def gated_repo(crash_repo) -> Path:
    add_improvement(crash_repo, GATED, "gated.yaml")
    git(crash_repo, "add", ".tars/improvements/gated.yaml")
    git(crash_repo, "commit", "-qm", "gated improvement")
    return crash_repo


def _latest(repo: Path) -> dict:
    return json.loads(
        run_tars(repo, "status", "--execution-id", "latest", "--format", "json").stdout
    )


def _decisions(execution: dict) -> set[tuple[str, str]]:
    # killed before its journal began: no execution, nothing decided
    return {(g["id"], g["decision"]["at"]) for g in execution.get("gates", []) if g["decision"]}


def _recover_keeping_gates(repo: Path) -> dict:
    """recover, checking that a parked execution stays parked and no decision is lost."""
    before = _latest(repo)
    recover = run_tars(repo, "recover")
    assert recover.returncode == 0, recover.stderr
    after = _latest(repo)
    assert _decisions(before) <= _decisions(after), "an approval was lost"
    if before.get("state") == "parked" or _decisions(before):
        assert after["state"] == "parked", f"{before['state']} -> {after['state']}"
    assert git(repo, "for-each-ref", "refs/tars-bot/locks", "refs/tars-bot/pool") == ""
    assert leftover_worktrees(repo) == []
    return after


def _drive_to_the_end(repo: Path) -> dict:
    """Approve (or resume) until the execution ends; it must succeed."""
    for _ in range(10):
        execution = _latest(repo)
        if execution["state"] != "parked":
            break
        gate = execution["gates"][-1]
        if gate["status"] == "pending":
            args = ["approve", "--execution-id", execution["id"], "--step", str(gate["step"])]
        else:
            args = ["resume", "--execution-id", execution["id"]]
        result = run_tars(repo, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    assert execution["state"] == "succeeded", execution
    return execution


def _each_step_once(repo: Path) -> None:
    steps = git(repo, "log", "--format=%(trailers:key=Tars-Step,valueonly)", "main..tars-bot/gated")
    assert sorted(s for s in steps.split() if s) == ["1/3", "2/3", "3/3"]


GATE_FAULTS = [
    ("execute", "after-parked:1"),
    ("approve", "after-decision:1"),
    ("approve", "after-resume-start:1"),
    ("approve", "after-resumed-step-commit:1"),
    ("approve", "after-parked:1"),
]


@pytest.mark.parametrize(("verb", "fault"), GATE_FAULTS)
def test_killed_at_a_gate_fault_point(gated_repo, verb, fault):
    before = user_state(gated_repo)
    if verb == "approve":
        assert run_tars(gated_repo, "execute", "--improvement-id", "gated").returncode == 0
        args = ["approve", "--execution-id", "latest", "--step", "1"]
    else:
        args = ["execute", "--improvement-id", "gated"]
    proc = run_tars(gated_repo, *args, fault=fault)
    assert proc.returncode == -signal.SIGKILL, f"{fault} not reached: {proc.stdout}{proc.stderr}"
    after = _recover_keeping_gates(gated_repo)
    if fault != "after-parked:1" or verb == "approve":
        assert after["gates"][0]["status"] == "approved"
    _drive_to_the_end(gated_repo)
    _each_step_once(gated_repo)
    assert user_state(gated_repo) == before


@pytest.mark.parametrize("seed", range(20))
def test_killed_at_a_random_moment_of_park_and_resume(gated_repo, seed):
    before = user_state(gated_repo)
    rng = random.Random(seed)
    if seed % 4 == 0:  # killed while executing up to its first gate
        proc = start_tars(gated_repo, "execute", "--improvement-id", "gated")
        time.sleep(rng.uniform(0.1, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if _recover_keeping_gates(gated_repo).get("state") != "parked":
            assert run_tars(gated_repo, "execute", "--improvement-id", "gated").returncode == 0
    else:
        assert run_tars(gated_repo, "execute", "--improvement-id", "gated").returncode == 0
    for _ in range(2):  # killed while deciding or resuming, twice
        execution = _latest(gated_repo)
        if execution["state"] != "parked":
            break
        gate = execution["gates"][-1]
        verb = (
            ["approve", "--step", str(gate["step"])] if gate["status"] == "pending" else ["resume"]
        )
        proc = start_tars(gated_repo, verb[0], "--execution-id", execution["id"], *verb[1:])
        time.sleep(rng.uniform(0.05, 0.7))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        _recover_keeping_gates(gated_repo)
    _drive_to_the_end(gated_repo)
    _each_step_once(gated_repo)
    assert user_state(gated_repo) == before


def test_two_concurrent_resumes_continue_once(gated_repo):
    assert run_tars(gated_repo, "execute", "--improvement-id", "gated").returncode == 0
    assert run_tars(gated_repo, "approve", "--execution-id", "latest", "--step", "1",
                    fault="after-decision:1").returncode == -signal.SIGKILL  # fmt: skip
    procs = [start_tars(gated_repo, "resume", "--execution-id", "latest") for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    # raced at the lock ("already resumed"), or came after the winner parked at the next gate
    assert "already resumed" in loser or "waits for approval of step 2" in loser
    execution = _latest(gated_repo)
    assert execution["state"] == "parked" and execution["gates"][-1]["step"] == 2
    _drive_to_the_end(gated_repo)
    _each_step_once(gated_repo)


def test_recover_clears_the_lock_a_killed_index_update_left(gated_repo):
    """Killed while it moved the outcome index (found by the random kills above), a process
    leaves refs/tars-bot/stats.lock; recover must not stop at it."""
    assert run_tars(gated_repo, "execute", "--improvement-id", "gated").returncode == 0
    lock = gated_repo / ".git" / "refs" / "tars-bot" / "stats.lock"
    lock.write_text("0" * 40 + "\n")
    recover = run_tars(gated_repo, "recover")
    assert recover.returncode == 0, recover.stderr
    assert "removed the stale lock of the outcome index" in recover.stdout
    assert not lock.exists() and _latest(gated_repo)["state"] == "parked"
