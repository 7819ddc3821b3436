"""`check` (the pre-commit hook), `schema`, `demo`, and the error handler."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tars_bot.models import Improvement
from tests.helpers import add_improvement, git


def test_check_reports_every_problem_and_exits_1(cli, make_repo):
    repo = make_repo({"a.py": "x = 1\n"})
    good = repo / "good.yaml"
    good.write_text("title: t\nsteps: [{name: e, edit: {path: a.py, search: x, replace: y}}]\n")
    bad = repo / "bad.yaml"
    bad.write_text("title: t\nsteps: [{name: e, edit: {path: a.py, search: zz, replace: y}}]\n")
    worse = repo / "worse.toml"
    worse.write_text("title = 't'\nsteps = 3\n")

    result = cli("check", "--repo", repo, good, bad, worse)
    assert result.code == 1
    assert "bad.yaml: steps[1].edit.search: text not found in a.py" in result.err
    assert "worse.toml: steps: Input should be a valid list" in result.err
    assert "good.yaml" not in result.err

    assert cli("check", "--repo", repo, good).code == 0


def test_pre_commit_hook_definition_runs_check(cli):
    hooks = yaml.safe_load(Path(".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["id"] == "tars-bot-check"
    assert hooks[0]["entry"] == "tars-bot check --hook"


def test_schema_is_the_improvement_models_schema(cli):
    result = cli("schema")
    schema = json.loads(result.out)
    assert result.code == 0
    assert schema["title"] == "tars-bot improvement"
    assert {"title", "steps", "validation"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["required"] == Improvement.model_json_schema()["required"]


def test_demo_builds_a_repository_and_plans_both_improvements(cli, tmp_path):
    target = tmp_path / "demo"
    result = cli("demo", "--dir", target)
    assert result.code == 0, result.err
    assert "Plan utf8-io" in result.out and "Plan counter" in result.out
    assert git(target, "status", "--porcelain") == ""
    assert git(target, "log", "--format=%s") == "Sample project for the tars-bot demo"


def test_help_teaches(cli):
    result = cli("plan", "--help")
    assert result.code == 0
    assert "--improvement-id" in result.out and "--base" in result.out


def test_internal_errors_exit_3_with_a_log(make_repo, tmp_path):
    repo = make_repo({"a.py": "x = 1\n"})
    (repo / "imp.yaml").write_text("title: t\nsteps: [{name: a, run: ls}]\n")
    # A corrupt object database is not user error: the command must say where the traceback went.
    objects = repo / ".git" / "objects"
    for path in objects.rglob("*"):
        if path.is_file() and path.parent.name != "info":
            path.chmod(0o644)
            path.write_bytes(b"corrupt")
    env_home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "tars_bot", "plan", "--improvement-file", "imp.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"HOME": str(env_home), "PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(env_home)},
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    log = env_home / "tars-bot" / "tars-bot.log"
    assert proc.stderr.count("\n") == 1 and str(log) in proc.stderr
    assert "Traceback" in log.read_text() and "Traceback" not in proc.stderr


def test_ids_and_numbers_are_checked_before_use(cli, make_repo):
    repo = make_repo({"a.py": "x = 1\n"})
    (repo / "outside.yaml").write_text("title: t\nsteps: [{name: a, run: ls}]\n")
    escape = cli("plan", "--repo", repo, "--improvement-id", "../../outside")
    assert escape.code == 2 and "'../../outside': not a valid id" in escape.err
    for args in (("history", "--limit", "-1"), ("rollback", "--execution-id", "x", "--step", "0")):
        result = cli(*args, "--repo", repo)
        assert result.code == 2 and "expected a number from 1" in result.err


def test_a_reader_that_leaves_early_ends_the_command_quietly(cli, make_repo):
    repo = make_repo({"a.py": "x = 1\n"})
    add_improvement(repo, "title: t\nsteps: [{name: a, write: {path: b.py, content: 'y = 2'}}]\n")
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    command = [sys.executable, "-m", "tars_bot", "history", "--format", "json"]

    # deterministic: `head -c 10` has read its 10 bytes and gone before tars-bot writes
    read_end, write_end = os.pipe()
    head = subprocess.Popen(["head", "-c", "10"], stdin=read_end, stdout=subprocess.PIPE)
    os.close(read_end)
    os.write(write_end, b"0123456789")
    assert head.communicate(timeout=30)[0] == b"0123456789"
    writer = subprocess.Popen(command, cwd=repo, stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    _, err = writer.communicate(timeout=60)
    assert (writer.returncode, err) == (141, b"")

    # as a shell runs it: whenever the reader leaves, nothing but the 10 bytes comes out
    piped = subprocess.run(
        f"{shlex.join(command)} | head -c 10",
        shell=True,
        cwd=repo,
        capture_output=True,
        check=False,
    )
    assert piped.stdout == b"[\n  {\n    " and piped.stderr == b""
