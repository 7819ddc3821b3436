"""Step-by-step mode: gates park an execution (no process waits), decisions are checked against
the gate's content and journaled before a resume continues it, exactly once."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tars_bot.execution import gates
from tars_bot.models import StepResult
from tars_bot.records import journal
from tars_bot.system import ExecutionSystem, Silent
from tests.helpers import add_improvement, commit_files, git, run_tars

NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "import pathlib, sys; sys.exit('BAD' in ''.join(p.read_text() for p in pathlib.Path('src').glob('*.txt')))")
"""


def steps(n: int, extra: str = "") -> str:
    lines = [
        f"  - {{name: s{i}, write: {{path: src/s{i}.txt, content: ok{i}}}}}"
        for i in range(1, n + 1)
    ]
    return (
        "title: gated\ntarget_components: [core]\nvalidation: {final: [tests]}\n"
        + extra
        + "steps:\n"
        + "\n".join(lines)
        + "\n"
    )


def make(make_repo, *, config: str = "", improvement: str | None = None) -> Path:
    pyproject = f'[tool.tars-bot]\ncomponents = {{ core = ["src/**"] }}\n{config}'
    repo = make_repo({"pyproject.toml": pyproject, "noxfile.py": NOXFILE, "src/keep.txt": "x"})
    add_improvement(repo, improvement or steps(5, "approval: each_step\n"), "gated.yaml")
    git(repo, "add", ".tars")
    commit_files(repo, {}, "improvement")
    return repo


def status(cli, repo: Path, execution_id: str = "latest") -> dict:
    result = cli("status", "--repo", repo, "--execution-id", execution_id, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def approve_args(repo: Path, execution: dict) -> list[str]:
    gate = execution["gates"][-1]
    return [
        "approve", "--repo", str(repo), "--execution-id", execution["id"],
        "--step", str(gate["step"]), "--sha", gate["commit"][:10],
    ]  # fmt: skip


def step_commits(repo: Path, branch: str = "tars-bot/gated") -> list[str]:
    return git(repo, "log", "--format=%s", f"main..{branch}").splitlines()


def test_each_step_parks_five_times_and_each_approval_resumes_once(make_repo, cli):
    repo = make(make_repo)
    plan = cli("plan", "--repo", repo, "--improvement-id", "gated", "--format", "json")
    assert [s["gated"] for s in json.loads(plan.out)["steps"]] == [True] * 5
    # the first execute is a real process: it exits while parked, nothing waits
    first = run_tars(repo, "execute", "--improvement-id", "gated")
    assert first.returncode == 0, first.stdout + first.stderr
    execution = status(cli, repo)
    assert "tars-bot approve --execution-id " + execution["id"] + " --step 1 --sha " in first.stdout
    assert "expires" in first.stdout
    assert git(repo, "for-each-ref", "refs/tars-bot/locks", "refs/tars-bot/pool") == ""
    for n in range(1, 6):
        execution = status(cli, repo)
        assert execution["state"] == "parked"
        gate = execution["gates"][-1]
        assert (gate["step"], gate["status"]) == (n, "pending")
        assert execution["checks"] == []  # no final validation before the last approval
        assert execution["continue_with"] == " ".join(
            ["tars-bot", *approve_args(repo, execution)]
        ).replace(f" --repo {repo}", "")
        assert len(step_commits(repo)) == n
        result = cli(*approve_args(repo, execution))
        assert result.code == 0, result.out + result.err
        if n < 5:  # the next command whole on its line, however narrow a pipe is
            following = status(cli, repo)["continue_with"]
            assert f"--step {n + 1} --sha" in following
            assert any(line.endswith(following) for line in result.out.splitlines())
    done = status(cli, repo)
    assert done["state"] == "succeeded"
    assert [c["check"] for c in done["checks"]] == ["tests"]
    assert len(done["gates"]) == 5 and all(
        g["decision"]["verdict"] == "approve" for g in done["gates"]
    )
    assert len(step_commits(repo)) == 5
    assert cli(*approve_args(repo, execution)).code == 2  # decided: nothing more


def test_refusals_name_what_is_wrong(make_repo, cli, monkeypatch):
    repo = make(make_repo, config='approval_require = ["not_self"]\n')
    assert cli("execute", "--repo", repo, "--improvement-id", "gated").code == 0
    execution = status(cli, repo)
    base = approve_args(repo, execution)
    gate = execution["gates"][-1]

    wrong_step = cli(*base[:-4], "--step", "2", "--sha", gate["commit"][:10])
    assert wrong_step.code == 2 and "--step 2 is not the pending gate" in wrong_step.err
    assert "--step 1 --sha" in wrong_step.err
    stale = cli(*base[:-4], "--sha", "0000000")
    assert stale.code == 2 and "--sha 0000000 is not the commit of the pending gate" in stale.err
    own = cli(*base)
    assert own.code == 2 and "may not approve it (the gate requires not_self)" in own.err

    monkeypatch.setenv("TARS_BOT_USER", "reviewer")
    again = cli("execute", "--repo", repo, "--improvement-id", "gated")
    assert again.code == 2 and f"parked execution, {execution['id']}" in again.err
    moved = git(repo, "commit-tree", "-p", gate["commit"], "-m", "moved", gate["tree"])
    git(repo, "update-ref", "refs/heads/tars-bot/gated", moved, gate["commit"])
    branch_moved = cli(*base)
    assert branch_moved.code == 2
    assert f"the branch moved: {gate['commit'][:10]} → {moved[:10]}" in branch_moved.err
    git(repo, "update-ref", "refs/heads/tars-bot/gated", gate["commit"], moved)

    assert cli(*base).code == 0
    assert status(cli, repo)["gates"][0]["decision"]["by"] == "reviewer"
    second = cli(*base)
    assert second.code == 2 and "already approved by reviewer at" in second.err
    for result in (wrong_step, stale, own, again, branch_moved, second):
        assert "Traceback" not in result.err


def test_improvement_asking_for_less_does_not_loosen(make_repo, cli):
    repo = make(
        make_repo, config='approval = "each_step"\n', improvement=steps(2, "approval: none\n")
    )
    plan = cli("plan", "--repo", repo, "--improvement-id", "gated", "--format", "json")
    planned = json.loads(plan.out)
    assert [s["gated"] for s in planned["steps"]] == [True, True]
    assert any(
        "asks for none, less than the repository's each_step" in w for w in planned["warnings"]
    )
    text = cli("plan", "--repo", repo, "--improvement-id", "gated")
    assert "parks for approval after 1, 2" in text.out and "asks for none" in text.out


def test_run_steps_and_approve_true_gate_their_steps(make_repo, cli):
    improvement = (
        "title: gated\ntarget_components: [core]\napproval: run_steps\nsteps:\n"
        "  - {name: a, write: {path: src/a.txt, content: a}}\n"
        "  - {name: b, run: 'echo b > src/b.txt'}\n"
        "  - {name: c, write: {path: src/c.txt, content: c}, approve: true}\n"
        "  - {name: d, write: {path: src/d.txt, content: d}}\n"
    )
    repo = make(make_repo, improvement=improvement)
    plan = cli("plan", "--repo", repo, "--improvement-id", "gated", "--format", "json")
    assert [s["gated"] for s in json.loads(plan.out)["steps"]] == [False, True, True, False]


def test_step_by_step_and_approve_through_and_all(make_repo, cli):
    repo = make(make_repo, improvement=steps(4))
    result = cli("execute", "--repo", repo, "--improvement-id", "gated", "--step-by-step")
    assert result.code == 0 and "--step 1 --sha" in result.out
    execution = status(cli, repo)
    assert cli(*approve_args(repo, execution), "--through", "3").code == 0
    execution = status(cli, repo)
    assert execution["gates"][-1]["step"] == 4 and execution["state"] == "parked"
    assert [g["status"] for g in execution["gates"]] == ["approved"] * 3 + ["pending"]
    assert cli(*approve_args(repo, execution), "--all").code == 0
    assert status(cli, repo)["state"] == "succeeded"


def test_reject_rolls_back(make_repo, cli):
    repo = make(make_repo)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    result = cli("reject", "--repo", repo, "--execution-id", "latest", "--reason", "no")
    assert result.code == 1, result.out + result.err
    done = status(cli, repo)
    assert done["state"] == "rolled_back" and done["gates"][0]["status"] == "rejected"
    assert git(repo, "branch", "--list", "tars-bot/gated") == ""


def test_reject_step_reverts_it_and_goes_on(make_repo, cli):
    repo = make(
        make_repo, config='on_reject = "step"\n', improvement=steps(3, "approval: each_step\n")
    )
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    approve = status(cli, repo)
    assert cli(*approve_args(repo, approve)).code == 0  # step 1 approved, parked at 2
    result = cli("reject", "--repo", repo, "--execution-id", "latest", "--step", "2")
    assert result.code == 0, result.out + result.err
    execution = status(cli, repo)
    assert execution["state"] == "parked" and execution["gates"][-1]["step"] == 3
    assert [s["state"] for s in execution["steps"]] == ["applied", "reverted", "applied"]
    assert cli(*approve_args(repo, execution)).code == 0
    files = git(repo, "ls-tree", "--name-only", "tars-bot/gated", "src/").split()
    assert "src/s1.txt" in files and "src/s2.txt" not in files and "src/s3.txt" in files


@pytest.mark.parametrize("on_expire", ["keep", "rollback"])
def test_expiry(make_repo, cli, monkeypatch, on_expire):
    config = f'approval_timeout = 60\non_expire = "{on_expire}"\n'
    repo = make(make_repo, config=config)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    execution = status(cli, repo)
    assert execution["state"] == "parked"
    monkeypatch.setenv("TARS_BOT_NOW", "2999-01-01T00:00:00+00:00")
    pending = json.loads(cli("pending", "--repo", repo, "--format", "json").out)
    assert pending["parked"] == []
    done = status(cli, repo)
    assert done["gates"][0]["status"] == "expired"
    assert done["state"] == ("expired" if on_expire == "keep" else "rolled_back")
    kept = git(repo, "branch", "--list", "tars-bot/gated") != ""
    assert kept == (on_expire == "keep")
    late = cli(*approve_args(repo, execution))
    assert late.code == 2 and "expired" in late.err
    again = cli("execute", "--repo", repo, "--improvement-id", "gated")  # takes the branch over
    assert again.code == 0 and "--step 1 --sha" in again.out, again.out + again.err


def test_pending_lists_parked_executions_with_the_command(make_repo, cli):
    repo = make(make_repo)
    assert json.loads(cli("pending", "--repo", repo, "--format", "json").out)["parked"] == []
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    execution = status(cli, repo)
    [parked] = json.loads(cli("pending", "--repo", repo, "--format", "json").out)["parked"]
    gate = execution["gates"][0]
    assert parked["id"] == execution["id"] and parked["gate"] == "step-1"
    assert parked["commit"] == gate["commit"] and parked["expires_at"] == gate["expires_at"]
    assert parked["command"] == " ".join(["tars-bot", *approve_args(repo, execution)]).replace(
        f" --repo {repo}", ""
    )
    text = cli("status", "--repo", repo, "--execution-id", execution["id"])
    assert "step 1/5 ⏸ waiting for approval" in text.out and parked["command"] in text.out
    history = cli("history", "--repo", repo)
    assert "waiting for approval" in history.out


def test_recover_never_rolls_back_a_parked_execution(make_repo, cli):
    repo = make(make_repo)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    before = status(cli, repo)
    assert cli("recover", "--repo", repo).code == 0
    after = status(cli, repo)
    assert after["state"] == "parked" and after["head_commit"] == before["head_commit"]
    assert git(repo, "rev-parse", "tars-bot/gated") == before["head_commit"]


class PauseAfterFirstStep(Silent):
    """A live display whose user asks for a pause while step 1 runs."""

    def __init__(self, system: ExecutionSystem) -> None:
        self.system = system

    def step_finished(self, result: StepResult) -> None:
        if result.number == 1:
            self.system.pause(self.system.execution_id("latest"))


def test_pause_parks_before_the_next_step_and_resume_continues(make_repo, cli):
    repo = make(make_repo, improvement=steps(3))
    system = ExecutionSystem(repo)
    plan = system.plan(system.load_improvement(system.improvement_file("gated")))
    result = system.execute(plan, progress=PauseAfterFirstStep(system))
    assert result.state == "parked"
    execution = status(cli, repo)
    assert execution["gates"][0]["kind"] == "pause" and execution["gates"][0]["step"] == 1
    assert git(repo, "for-each-ref", "refs/tars-bot/pause") == ""  # the request is used up
    text = cli("status", "--repo", repo, "--execution-id", "latest")
    assert "step 1/3 ⏸ paused" in text.out and "tars-bot resume --execution-id" in text.out
    refused = cli("approve", "--repo", repo, "--execution-id", "latest", "--step", "2")
    assert refused.code == 2 and "--step 2 is not the pending gate" in refused.err
    resumed = cli("resume", "--repo", repo, "--execution-id", "latest")
    assert resumed.code == 0, resumed.out + resumed.err
    done = status(cli, repo)
    assert done["state"] == "succeeded" and len(step_commits(repo)) == 3
    assert done["gates"][0]["decision"]["verdict"] == "approve"
    again = cli("resume", "--repo", repo, "--execution-id", "latest")
    assert again.code == 2 and "already resumed" in again.err
    idle = cli("pause", "--repo", repo, "--execution-id", "latest")
    assert idle.code == 2 and "not running: nothing to pause" in idle.err


def test_resume_of_a_step_gate_names_the_approve_command(make_repo, cli):
    repo = make(make_repo)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    result = cli("resume", "--repo", repo, "--execution-id", "latest")
    assert result.code == 2 and "waits for approval of step 1: `tars-bot approve" in result.err


def test_a_comment_is_acted_on_once(make_repo, cli):
    repo = make(make_repo)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    system = ExecutionSystem(repo)
    execution_id = system.execution_id("latest")
    ask = gates.Ask("approve", "writer", via="comment", step=1, comment_id=42, permission="write")
    assert system.approve(execution_id, ask).state == "parked"  # at step 2 now
    again = gates.Ask("approve", "writer", via="comment", comment_id=42, permission="write")
    with pytest.raises(gates.AlreadyDecided, match="comment 42 was acted on already"):
        system.approve(execution_id, again)
    decision = system.status(execution_id).gates[0].decision
    assert decision is not None and (decision.via, decision.comment_id) == ("comment", 42)
    assert len(step_commits(repo)) == 2


class Watching(Silent):
    """A live display that looks at history and pending while the resumed steps run."""

    def __init__(self, system: ExecutionSystem) -> None:
        self.system, self.seen = system, []

    def step_started(self, step) -> None:
        self.seen.append((self.system.history()[0].state, self.system.pending()))


def test_a_resumed_execution_is_running_not_parked_while_it_runs(make_repo, cli):
    repo = make(make_repo, improvement=steps(2, "approval: each_step\n"))
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    system = ExecutionSystem(repo)
    watching = Watching(system)
    ask = gates.Ask("approve", "writer", step=1)
    assert system.approve(system.execution_id("latest"), ask, watching).state == "parked"
    assert watching.seen == [("running", [])]


def test_a_rejection_killed_before_its_rollback_is_acted_on_by_resume(make_repo, cli):
    repo = make(make_repo)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    killed = run_tars(repo, "reject", "--execution-id", "latest", fault="after-decision")
    assert killed.returncode == -9
    assert cli("recover", "--repo", repo).code == 0
    execution = status(cli, repo)
    assert execution["state"] == "parked" and execution["gates"][0]["status"] == "rejected"
    assert execution["continue_with"] == f"tars-bot resume --execution-id {execution['id']}"
    result = cli("resume", "--repo", repo, "--execution-id", "latest")
    assert result.code == 1 and "rolled back" in result.out
    assert status(cli, repo)["state"] == "rolled_back"


QUESTION = "[a]pprove, [r]eject, [d]iff, [q]uit"


def _pty_session(repo: Path, answers: list[str]) -> tuple[int, str]:
    """`tars-bot execute` on a pseudo-terminal, answering each question it asks in turn: its
    exit code and everything it printed."""
    main, child = os.openpty()
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    env.pop("TARS_BOT_FAULT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tars_bot", "execute", "--improvement-id", "gated"],
        cwd=repo, env=env, stdin=child, stdout=child, stderr=child, close_fds=True,
    )  # fmt: skip
    os.close(child)
    seen, asked = b"", 0
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        assert ready, seen.decode(errors="replace")  # neither a question nor the end came
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal's other end closed: the process exited
            break
        if not chunk:
            break
        seen += chunk
        while asked < len(answers) and seen.decode(errors="replace").count(QUESTION) > asked:
            os.write(main, answers[asked].encode() + b"\n")
            asked += 1
    os.close(main)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_at_a_terminal_execute_asks_at_each_gate(make_repo, cli):
    repo = make(make_repo, improvement=steps(3, "approval: each_step\n"))
    code, said = _pty_session(repo, ["d", "a", "q"])
    assert code == 0, said
    assert "+ok1" in said  # the diff of step 1
    assert "step 2/3 ⏸ waiting for approval" in said and "to continue: tars-bot approve" in said
    execution = status(cli, repo)
    assert execution["state"] == "parked" and execution["gates"][-1]["step"] == 2
    assert execution["gates"][0]["decision"]["via"] == "cli"


def test_recover_expires_a_gate_that_waited_too_long(make_repo, cli, monkeypatch):
    repo = make(make_repo, config="approval_timeout = 60\n")
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    assert cli("recover", "--repo", repo).out.strip() == "nothing to recover"  # still parked
    monkeypatch.setenv("TARS_BOT_NOW", "2999-01-01T00:00:00+00:00")
    execution_id = ExecutionSystem(repo).execution_id("latest")
    assert f"expired execution {execution_id}" in cli("recover", "--repo", repo).out
    assert status(cli, repo)["state"] == "expired"
    assert git(repo, "branch", "--list", "tars-bot/gated") != ""  # on_expire = keep


def test_a_plan_changed_since_the_gate_voids_the_approval(make_repo, cli):
    repo = make(make_repo)
    cli("execute", "--repo", repo, "--improvement-id", "gated")
    system = ExecutionSystem(repo)
    execution_id = system.execution_id("latest")
    plan = system.plan_of(execution_id)
    edited = plan.model_copy(update={"warnings": ["edited"]}).sealed()
    record = journal.Record.resume(system.repo, execution_id)
    record.save(record.execution, {"plan.json": edited.model_dump_json().encode()})
    result = cli("approve", "--repo", repo, "--execution-id", "latest", "--step", "1")
    assert (
        result.code == 2
        and f"the plan of execution {execution_id} changed since gate step-1" in result.err
    )
    assert status(cli, repo)["gates"][0]["status"] == "pending"
