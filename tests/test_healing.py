"""Self-healing: a step failing a per-step check that the repository's fixers can mend is healed
(a second commit, `Tars-Heal-Of`), not failed; everything that walks step commits counts the heal."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tars_bot import ExecutionSystem
from tars_bot.ui.markdown import execution_markdown
from tests.helpers import (
    add_improvement,
    check_recovery,
    clone,
    commit_files,
    commit_on,
    git,
    leftover_worktrees,
    pushed,
    receive,
    run_tars,
    tampered,
    user_state,
)

PYPROJECT = """\
[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F", "I", "W"]
"""
FILES = {
    "pyproject.toml": PYPROJECT,
    "src/pkg/__init__.py": "",
    "src/pkg/core.py": "def value():\n    return 1\n",
    "README.md": "# pkg\n",
}
NOXFILE = """\
import nox

@nox.session(venv_backend="none")
def tests(session):
    session.run("python", "-c", "import sys; sys.path.insert(0, 'src'); "
                "from pkg.core import value; sys.exit(value() != 1)")
"""
# A healer of the repository's own: mends one `(:` per run, in the files the step changed, and
# leaves what it was told (TARS_FAILURE_FILE) where the test can read it.
HEALER = """\
import json, os, pathlib
failure = json.loads(pathlib.Path(os.environ["TARS_FAILURE_FILE"]).read_text())
for path in failure["changed_files"]:
    file = pathlib.Path(path)
    file.write_text(file.read_text().replace("(:", "():", 1))
pathlib.Path("src/pkg/failure.json").write_text(json.dumps(failure))
"""
ESCAPING_HEALER = """\
import pathlib
pathlib.Path("src/pkg/bad.py").write_text("def f():\\n    pass\\n")
pathlib.Path("README.md").write_text("healed too\\n")
"""
UNFORMATTED = "def f( x ):\\n    return x*2\\n"
BRANCH = "tars-bot/imp"


def improvement(*steps: str, extra: str = "") -> str:
    listed = "\n".join(f"  - {step}" for step in steps)
    return f"title: heal me\ntarget_components: ['src/**']\n{extra}steps:\n{listed}\n"


def write(path: str, content: str, name: str = "write") -> str:
    return f'{{name: {name}, write: {{path: {path}, content: "{content}"}}}}'


def with_config(files: dict[str, str], config: str) -> dict[str, str]:
    return {**files, "pyproject.toml": PYPROJECT + f"\n[tool.tars-bot]\n{config}\n"}


def execute(cli, repo: Path, text: str) -> dict:
    add_improvement(repo, text)
    cli("execute", "--repo", repo, "--improvement-id", "imp")
    return json.loads(cli("history", "--repo", repo, "--format", "json", "--limit", "1").out)[0]


def branch_commits(repo: Path) -> list[str]:
    return git(repo, "rev-list", "--reverse", f"main..{BRANCH}").split()


def trailers(repo: Path, commit: str) -> str:
    return git(repo, "log", "-1", "--format=%(trailers:only,unfold)", commit)


def test_a_step_that_breaks_ruff_format_is_healed_and_kept(cli, make_repo):
    repo = make_repo(FILES)
    execution = execute(cli, repo, improvement(write("src/pkg/ugly.py", UNFORMATTED)))
    assert execution["state"] == "succeeded", execution["failure_reason"]
    [step] = execution["steps"]
    step_commit, heal_commit = branch_commits(repo)
    assert step["state"] == "applied" and step["commit"] == step_commit
    assert "Tars-Heal-Of" not in trailers(repo, step_commit)
    assert trailers(repo, heal_commit) == (
        f"Tars-Improvement: imp\nTars-Execution: {execution['id']}\nTars-Step: 1/1\nTars-Heal-Of: 1"
    )
    assert git(repo, "show", f"{BRANCH}:src/pkg/ugly.py") == "def f(x):\n    return x * 2"
    heal = step["heal"]
    assert heal["commit"] == heal_commit == execution["head_commit"]
    assert heal["commands"] == ["ruff check --fix", "ruff format"]
    assert heal["fixed"] == ["ruff format"] and heal["rounds"] == 1
    assert [c["check"] for c in heal["failed"]] == ["ruff format"]
    assert heal["changed_files"] == ["src/pkg/ugly.py"]
    assert all(c["passed"] for c in step["checks"])  # the step as the branch holds it
    assert leftover_worktrees(repo) == []

    shown = cli("status", "--repo", repo, "--execution-id", execution["id"]).out
    assert "applied (healed: ruff format)" in " ".join(shown.split())
    system = ExecutionSystem(repo)
    body = execution_markdown(system.status(execution["id"]), system.plan_of(execution["id"]))
    assert "| applied (healed: ruff format) |" in body
    assert (
        '- 🩹 step 1 "write" failed ruff format; ruff check --fix, ruff format mended it '
        f"(commit {heal_commit[:10]}, 1 file)"
    ) in body


def test_a_step_that_breaks_a_fixable_lint_rule_is_healed(cli, make_repo):
    repo = make_repo(FILES)
    step = write("src/pkg/extra.py", "import os\\nimport sys\\n\\nprint(sys.argv)\\n")
    execution = execute(cli, repo, improvement(step))
    assert execution["state"] == "succeeded", execution["failure_reason"]
    heal = execution["steps"][0]["heal"]
    assert heal["fixed"] == ["ruff check"]
    assert "F401" in heal["failed"][0]["output"]
    assert git(repo, "show", f"{BRANCH}:src/pkg/extra.py") == "import sys\n\nprint(sys.argv)"


def test_a_failing_test_session_is_not_healed(cli, make_repo):
    """ruff format mends the spacing, not the wrong value: the step fails, nothing is kept."""
    repo = make_repo({**FILES, "noxfile.py": NOXFILE})
    edit = '{name: wrong, edit: {path: src/pkg/core.py, search: "return 1", replace: "return  2"}}'
    execution = execute(cli, repo, improvement(edit, extra="validation: {per_step: [tests]}\n"))
    assert execution["state"] == "rolled_back"
    [step] = execution["steps"]
    assert step["state"] == "failed"
    assert step["heal"]["commit"] is None and step["heal"]["fixed"] == []
    assert {c["check"] for c in step["heal"]["failed"]} == {"ruff format", "tests"}
    assert step["reason"] == (
        "per-step check: ruff format failed (src/pkg/core.py: would be reformatted by ruff "
        "format); healing (ruff check --fix, ruff format) did not mend it: nox session tests "
        "failed (session failed) after healing"
    )
    assert git(repo, "branch", "--list", BRANCH) == ""
    assert leftover_worktrees(repo) == []


def test_a_healer_writing_outside_the_steps_scope_fails_the_step(cli, make_repo):
    files = {**FILES, "tools/heal.py": ESCAPING_HEALER}
    repo = make_repo(with_config(files, f'heal = ["{sys.executable} tools/heal.py"]'))
    execution = execute(cli, repo, improvement(write("src/pkg/bad.py", "def f(:\\n")))
    assert execution["state"] == "rolled_back"
    assert execution["failure_reason"].endswith(
        "did not mend it: its healers changed README.md, outside its scope (src/**)"
    )
    assert execution["steps"][0]["heal"]["commit"] is None
    assert git(repo, "show", "main:README.md") == "# pkg"


def test_heal_empty_turns_healing_off(cli, make_repo):
    repo = make_repo(with_config(FILES, "heal = []"))
    execution = execute(cli, repo, improvement(write("src/pkg/ugly.py", UNFORMATTED)))
    assert execution["state"] == "rolled_back"
    assert execution["steps"][0]["heal"] is None
    assert "ruff format failed" in execution["failure_reason"]
    assert "healing" not in execution["failure_reason"]


@pytest.mark.parametrize(
    ("healer", "limits", "why"),
    [
        ("true", "", "its healers changed nothing"),
        ("exit 3", "", "`exit 3` exited with code 3"),
        ("sleep 20", "{step_timeout: 1}", "`sleep 20` timed out after 1s (limits.step_timeout)"),
        (
            "printf 'A = 1\\nB = 2\\nC = 3\\n' > src/pkg/bad.py",
            "{max_changed_lines: 3}",
            "the step and its heal changed 5 lines, over the limit of 3",
        ),
    ],
)
def test_a_healer_that_cannot_mend_the_step_says_why(cli, make_repo, healer, limits, why):
    repo = make_repo(with_config(FILES, f"heal = {json.dumps([healer])}"))
    extra = f"limits: {limits}\n" if limits else ""
    execution = execute(cli, repo, improvement(write("src/pkg/bad.py", "def f(:\\n"), extra=extra))
    assert execution["state"] == "rolled_back"
    assert execution["failure_reason"].endswith(f"did not mend it: {why}")


@pytest.mark.parametrize(("attempts", "healed"), [(0, False), (1, False), (2, True)])
def test_heal_attempts_bounds_the_rounds(cli, make_repo, attempts, healed):
    """The step leaves two syntax errors; the healer mends one per round."""
    config = f'heal = ["{sys.executable} tools/heal.py"]\nheal_attempts = {attempts}'
    repo = make_repo(with_config({**FILES, "tools/heal.py": HEALER}, config))
    step = write("src/pkg/bad.py", "def f(:\\n    pass\\n\\n\\ndef g(:\\n    pass\\n")
    execution = execute(cli, repo, improvement(step))
    [result] = execution["steps"]
    if not healed:
        assert execution["state"] == "rolled_back"
        assert (result["heal"] or {}).get("rounds") == (attempts or None)
        return
    assert execution["state"] == "succeeded", execution["failure_reason"]
    assert result["heal"]["rounds"] == 2
    assert result["heal"]["commands"] == [f"{sys.executable} tools/heal.py"] * 2
    told = json.loads(git(repo, "show", f"{BRANCH}:src/pkg/failure.json"))
    assert told["round"] == 2 and told["rounds"] == 2


def test_a_healer_reads_the_failure_file(cli, make_repo):
    config = f'heal = ["{sys.executable} tools/heal.py"]'
    repo = make_repo(with_config({**FILES, "tools/heal.py": HEALER}, config))
    execution = execute(cli, repo, improvement(write("src/pkg/bad.py", "def f(:\\n    pass\\n")))
    assert execution["state"] == "succeeded", execution["failure_reason"]
    told = json.loads(git(repo, "show", f"{BRANCH}:src/pkg/failure.json"))
    assert (told["step"], told["name"], told["scope"]) == (1, "write", ["src/**"])
    assert told["changed_files"] == ["src/pkg/bad.py"]
    assert (told["round"], told["rounds"]) == (1, 1)
    failed = {c["check"]: c for c in told["failed_checks"]}
    assert failed["compile"]["status"] == "failed"
    assert "src/pkg/bad.py:1" in failed["compile"]["output"]
    heal = execution["steps"][0]["heal"]
    assert heal["fixed"] == ["compile", "ruff check"]  # ruff format could not even parse it
    assert heal["changed_files"] == ["src/pkg/bad.py", "src/pkg/failure.json"]


def test_rolling_back_a_healed_step_reverts_its_heal_too(cli, make_repo):
    repo = make_repo(FILES)
    base = git(repo, "rev-parse", "main")
    text = improvement(
        write("src/pkg/ugly.py", UNFORMATTED), write("src/pkg/b.py", "B = 2\\n", "b")
    )
    execution = execute(cli, repo, text)
    assert execution["state"] == "succeeded", execution["failure_reason"]
    step_commit, heal_commit, _ = branch_commits(repo)

    result = cli("rollback", "--repo", repo, "--execution-id", execution["id"], "--step", "1")
    assert result.code == 0, result.err + result.out
    *_, revert_heal, revert_step = branch_commits(repo)
    assert f"Tars-Revert-Of: {heal_commit}" in trailers(repo, revert_heal)
    assert f"Tars-Revert-Of: {step_commit}" in trailers(repo, revert_step)
    assert git(repo, "diff", "--name-only", base, BRANCH) == "src/pkg/b.py"  # the replay
    after = json.loads(
        cli("status", "--repo", repo, "--execution-id", execution["id"], "--format", "json").out
    )
    assert after["steps"][0]["state"] == "reverted"
    assert after["steps"][0]["revert_commit"] == revert_step
    assert after["head_commit"] == revert_step


def test_drop_step_probes_and_replays_a_healed_step_with_its_heal(cli, make_repo):
    bad = "value() != 1 or __import__('os').path.exists('src/pkg/bad.txt')"
    noxfile = NOXFILE.replace("value() != 1", bad)
    repo = make_repo({**FILES, "noxfile.py": noxfile})
    text = improvement(
        write("src/pkg/ugly.py", UNFORMATTED, "healed"),
        write("src/pkg/bad.txt", "BAD", "bad"),
        write("src/pkg/c.py", "C = 3\\n", "c"),
        extra="on_failure: drop-step\nvalidation: {final: [tests]}\n",
    )
    execution = execute(cli, repo, text)
    assert execution["state"] == "succeeded", execution["failure_reason"]
    assert [s["state"] for s in execution["steps"]] == ["applied", "reverted", "applied"]
    assert [c["step"] for c in execution["culprits"]] == [2]
    files = git(repo, "ls-tree", "--name-only", BRANCH, "src/pkg/").split()
    assert files == ["src/pkg/__init__.py", "src/pkg/c.py", "src/pkg/core.py", "src/pkg/ugly.py"]
    assert git(repo, "show", f"{BRANCH}:src/pkg/ugly.py") == "def f(x):\n    return x * 2"


def test_reverting_a_merged_healed_step_undoes_its_heal(cli, make_repo):
    repo = make_repo(FILES)
    text = improvement(
        write("src/pkg/ugly.py", UNFORMATTED), write("src/pkg/b.py", "B = 2\\n", "b")
    )
    execution = execute(cli, repo, text)
    git(repo, "merge", "--no-ff", "-q", "-m", "Merge pull request #1", BRANCH)
    result = cli("rollback", "--repo", repo, "--execution-id", execution["id"], "--step", "1")
    assert result.code == 0, result.err + result.out
    revert = f"tars-bot/revert-{execution['id']}-step-1"
    assert git(repo, "diff", "--name-only", "main", revert) == "src/pkg/ugly.py"
    assert git(repo, "ls-tree", "--name-only", revert, "src/pkg/").split() == [
        "src/pkg/__init__.py",
        "src/pkg/b.py",
        "src/pkg/core.py",
    ]


def test_killed_before_the_branch_moves_to_the_heal_commit(make_repo):
    repo = make_repo(FILES)
    add_improvement(repo, improvement(write("src/pkg/ugly.py", UNFORMATTED)), "healcrash.yaml")
    commit_files(repo, {}, "improvement")
    before = user_state(repo)
    proc = run_tars(repo, "execute", "--improvement-id", "healcrash", fault="after-heal-commit")
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    [execution] = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    [step] = execution["steps"]
    assert execution["state"] == "running" and step["state"] == "running"  # the intent
    assert step["heal"]["commit"] is not None
    assert git(repo, "rev-parse", "tars-bot/healcrash") == step["commit"]
    check_recovery(repo, before, "healcrash")
    assert git(repo, "show", "tars-bot/healcrash:src/pkg/ugly.py") == "def f(x):\n    return x * 2"


HANDOFF_IMPROVEMENT = improvement(
    write("src/pkg/ugly.py", UNFORMATTED), write("src/pkg/b.py", "B = 2\\n", "b")
)


@pytest.fixture
def healed_origin(tmp_path: Path) -> Path:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    commit_files(seed, {**FILES, ".tars/improvements/imp.yaml": HANDOFF_IMPROVEMENT}, "initial")
    git(seed, "push", "-q", "origin", "main")
    return origin


def run_healed(origin: Path) -> tuple[Path, str]:
    runner = clone(origin, "runner")
    proc = run_tars(runner, "execute", "--improvement-id", "imp", "--bundle", "../good.bundle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [execution] = json.loads(run_tars(runner, "history", "--format", "json").stdout)
    assert execution["steps"][0]["heal"]["commit"] is not None
    return runner, execution["id"]


def test_the_hand_off_accepts_a_healed_execution(healed_origin):
    runner, execution_id = run_healed(healed_origin)
    proc = receive(healed_origin, healed_origin.parent / "good.bundle", "--push")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(healed_origin, "rev-parse", BRANCH) == git(runner, "rev-parse", BRANCH)
    assert f"refs/tars-bot/executions/{execution_id}" in pushed(healed_origin)


@pytest.mark.parametrize(
    ("case", "refused"),
    [
        ("outside scope", "the heal of step 1 changed README.md, outside its scope"),
        ("not after its step", "heals step 1, but does not follow it"),
        ("another step", "Tars-Heal-Of '2' is not its step 1"),
    ],
)
def test_the_hand_off_refuses_a_forged_heal(healed_origin, case, refused):
    runner, execution_id = run_healed(healed_origin)
    step_1, heal, step_2 = git(runner, "rev-list", "--reverse", f"origin/main..{BRANCH}").split()
    message = git(runner, "log", "-1", "--format=%B", heal)
    if case == "outside scope":
        tip = commit_on(runner, step_1, {"README.md": "pwned\n"}, message)
    elif case == "not after its step":
        tip = commit_on(runner, step_2, {"src/pkg/x.py": "X = 1\n"}, message)
    else:
        forged = message.replace("Tars-Heal-Of: 1", "Tars-Heal-Of: 2")
        tip = commit_on(runner, step_1, {"src/pkg/ugly.py": "def f(x):\n    return x\n"}, forged)
    bundle = tampered(runner, execution_id, tip, case.replace(" ", "-"))
    proc = receive(healed_origin, bundle, "--push")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert refused in proc.stderr
    assert pushed(healed_origin) == ""
