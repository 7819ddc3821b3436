"""Plans are executed as planned: an edited plan is refused, even with its digest recomputed;
and a step's bytes count against `max_changed_bytes`, binary files included."""

from __future__ import annotations

import json
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tars_bot.models import ExecutionPlan
from tests.helpers import commit_files, git

SOURCE = {
    "pyproject.toml": """\
        [project]
        name = "pkg"

        [tool.tars-bot]
        components = { core = ["src/**"] }
        """,
    "src/pkg/__init__.py": "",
    "src/pkg/io.py": "def load(path):\n    return open(path).read()\n",
}

TWO_STEPS = """\
    title: UTF-8 everywhere
    target_components: [core]
    steps:
      - name: Generate module
        run: printf 'ENCODING = "utf-8"\\n' > src/pkg/enc.py
      - name: Add encoding
        edit: {path: src/pkg/io.py, search: "open(path)", replace: "open(path, encoding='utf-8')"}
    """


def committed_repo(make_repo, name: str = "repo") -> Path:
    """A repository whose improvement `imp` is committed."""
    return make_repo({**SOURCE, ".tars/improvements/imp.yaml": TWO_STEPS}, name=name)


def plan_file(cli, repo: Path, path: Path, *source: str) -> Path:
    source = source or ("--improvement-id", "imp")
    result = cli("plan", "--repo", repo, *source, "--output-file", path)
    assert result.code == 0, result.err
    return path


def edited(path: Path, edit: Callable[[dict], None]) -> Path:
    """The plan at `path` edited, its digest recomputed as anyone can."""
    plan = json.loads(path.read_text())
    edit(plan)
    plan["digest"] = ExecutionPlan.model_validate(plan).compute_digest()
    out = path.with_name("edited.json")
    out.write_text(json.dumps(plan))
    return out


def nothing_executed(repo: Path) -> bool:
    return (
        git(repo, "branch", "--list", "tars-bot/*") == ""
        and git(repo, "for-each-ref", "refs/tars-bot/executions") == ""
    )


def widen_scope(plan: dict) -> None:
    plan["steps"][0]["scope"] = ["**"]


def change_run_command(plan: dict) -> None:
    plan["steps"][0]["action"]["command"] = "touch .github/pwned"


def change_run_command_everywhere(plan: dict) -> None:
    plan["improvement"]["steps"][0]["run"] = "touch src/pwned"
    plan["steps"][0]["action"]["command"] = "touch src/pwned"


def raise_limits(plan: dict) -> None:
    for step in plan["steps"]:
        step["limits"]["max_changed_lines"] = 10**9
        step["limits"]["step_timeout"] = 10**6


EDITS = {
    "steps[1].scope[1]": widen_scope,
    "steps[1].action.command": change_run_command,
    "improvement.steps[1].run": change_run_command_everywhere,
    "steps[1].limits.step_timeout": raise_limits,
}


@pytest.mark.parametrize("where", EDITS)
def test_edited_plan_with_recomputed_digest_is_refused(cli, make_repo, tmp_path, where):
    repo = committed_repo(make_repo)
    tampered = edited(plan_file(cli, repo, tmp_path / "plan.json"), EDITS[where])
    result = cli("execute", "--repo", repo, "--plan-file", tampered)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert "not sealed with the plan key here" in line
    assert f"its {where} is not what improvement imp" in line
    assert nothing_executed(repo)
    rebased = cli("execute", "--repo", repo, "--plan-file", tampered, "--rebase")
    assert rebased.code == 2 and nothing_executed(repo)


def test_edited_plan_of_an_uncommitted_improvement_is_refused(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    improvement = tmp_path / "imp.yaml"
    improvement.write_text(textwrap.dedent(TWO_STEPS))
    planned = plan_file(cli, repo, tmp_path / "plan.json", "--improvement-file", improvement)
    result = cli("execute", "--repo", repo, "--plan-file", edited(planned, widen_scope))
    assert result.code == 2
    assert "improvement imp with steps is not committed at its base" in result.err
    assert nothing_executed(repo)


def test_untouched_plan_executes(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    improvement = tmp_path / "imp.yaml"
    improvement.write_text(textwrap.dedent(TWO_STEPS))
    planned = plan_file(cli, repo, tmp_path / "plan.json", "--improvement-file", improvement)
    assert json.loads(planned.read_text())["seal"].startswith("hmac-sha256:")
    result = cli("execute", "--repo", repo, "--plan-file", planned)
    assert result.code == 0, result.err
    assert git(repo, "show", "tars-bot/imp:src/pkg/enc.py") == 'ENCODING = "utf-8"'


def test_plan_key_is_out_of_a_sandboxed_step_s_reach(cli, make_repo, tmp_path):
    repo = committed_repo(make_repo)
    commit_files(
        repo,
        {
            ".tars/improvements/peek.yaml": """\
                title: Peek at the plan key
                steps:
                  - name: Peek
                    run: cat ~/.cache/tars-bot/plan-key $TARS_BOT_PLAN_KEY > src/seen.txt 2>&1; true
                    scope: ["src/**"]
                """
        },
    )
    planned = plan_file(cli, repo, tmp_path / "plan.json", "--improvement-id", "peek")
    key = Path.home() / ".cache" / "tars-bot" / "plan-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert git(repo, "status", "--porcelain") == ""
    result = cli("execute", "--repo", repo, "--plan-file", planned)
    assert result.code == 0, result.err
    assert key.read_text() not in git(repo, "show", "tars-bot/peek:src/seen.txt")


def elsewhere(here: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of `here` on another machine: with a HOME, so a plan key, of its own."""
    there = here.with_name("elsewhere")
    git(here.parent, "clone", "-q", str(here), str(there))
    monkeypatch.setenv("HOME", str(there.with_name("elsewhere-home")))
    return there


def test_plan_made_elsewhere_executes_when_it_is_what_its_improvement_plans_to(
    cli, make_repo, tmp_path, monkeypatch
):
    here = committed_repo(make_repo)
    home = Path.home()
    planned = plan_file(cli, elsewhere(here, monkeypatch), tmp_path / "plan.json")
    monkeypatch.setenv("HOME", str(home))

    edit = cli("execute", "--repo", here, "--plan-file", edited(planned, change_run_command))
    assert edit.code == 2 and nothing_executed(here)
    result = cli("execute", "--repo", here, "--plan-file", planned)
    assert result.code == 0, result.err
    assert git(here, "show", "tars-bot/imp:src/pkg/enc.py") == 'ENCODING = "utf-8"'


def test_shared_plan_key_carries_any_plan_between_machines(cli, make_repo, tmp_path, monkeypatch):
    here = make_repo(SOURCE)
    home = Path.home()
    there = elsewhere(here, monkeypatch)
    improvement = tmp_path / "imp.yaml"
    improvement.write_text(textwrap.dedent(TWO_STEPS))
    source = ("--improvement-file", str(improvement))
    planned = plan_file(cli, there, tmp_path / "plan.json", *source)
    monkeypatch.setenv("HOME", str(home))

    refused = cli("execute", "--repo", here, "--plan-file", planned)
    assert refused.code == 2 and "TARS_BOT_PLAN_KEY" in refused.err

    monkeypatch.setenv("TARS_BOT_PLAN_KEY", "a secret both machines hold, 32 bytes or more")
    planned = plan_file(cli, there, tmp_path / "plan.json", *source)
    assert cli("execute", "--repo", here, "--plan-file", edited(planned, widen_scope)).code == 2
    result = cli("execute", "--repo", here, "--plan-file", planned)
    assert result.code == 0, result.err


BINARY = """\
    title: Add data
    steps:
      - name: Data
        run: for f in a b c; do head -c {size} /dev/urandom > data/$f.bin; done
        scope: ["data/**"]
    """


def binary_repo(make_repo, limit: int) -> Path:
    config = (
        textwrap.dedent(SOURCE["pyproject.toml"]) + f"limits = {{ max_changed_bytes = {limit} }}\n"
    )
    return make_repo({**SOURCE, "pyproject.toml": config, "data/README": "data\n"})


def test_binary_bytes_over_the_limit_fail_the_step(cli, make_repo, tmp_path):
    repo = binary_repo(make_repo, 1_000_000)
    improvement = tmp_path / "data.yaml"
    improvement.write_text(textwrap.dedent(BINARY).replace("{size}", "400000"))
    result = cli("execute", "--repo", repo, "--improvement-file", improvement)
    assert result.code == 1
    reason = "changed 1200000 bytes, over the limit of 1000000 (limits.max_changed_bytes)"
    assert reason in result.out + result.err
    assert git(repo, "branch", "--list", "tars-bot/*") == ""


def test_binary_bytes_under_the_limit_pass(cli, make_repo, tmp_path):
    repo = binary_repo(make_repo, 1_000_000)
    improvement = tmp_path / "data.yaml"
    improvement.write_text(textwrap.dedent(BINARY).replace("{size}", "300000"))
    result = cli("execute", "--repo", repo, "--improvement-file", improvement)
    assert result.code == 0, result.err
    added = git(repo, "diff", "--name-only", "main", "tars-bot/data").split()
    assert added == ["data/a.bin", "data/b.bin", "data/c.bin"]


def test_improvement_may_lower_the_byte_limit_only(cli, make_repo, tmp_path):
    repo = binary_repo(make_repo, 1_000_000)
    improvement = tmp_path / "data.yaml"
    text = textwrap.dedent(BINARY).replace("{size}", "300000")
    improvement.write_text(text + "limits: {max_changed_bytes: 2000000}\n")
    raised = cli("plan", "--repo", repo, "--improvement-file", improvement)
    assert raised.code == 2
    assert "limits.max_changed_bytes: 2000000 is over the repository's limit" in raised.err
    improvement.write_text(text + "limits: {max_changed_bytes: 500000}\n")
    lowered = cli("execute", "--repo", repo, "--improvement-file", improvement)
    assert lowered.code == 1
    assert "over the limit of 500000 (limits.max_changed_bytes)" in lowered.out + lowered.err
