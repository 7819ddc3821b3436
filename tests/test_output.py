"""Output where it is read by other programs: pipes, the GitHub Actions log, scripts reading JSON.
Lines arrive as events happen, tables are never cut, colour only where it can show, states in
words, and every JSON output versioned and described by a published schema."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import add_improvement, history, make_validated_repo, start_tars

LONG_BRANCH_PREFIX = "tars-bot/a-very-long-branch-prefix-that-no-eighty-column-table-would-hold/"


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def index(lines: list[str], pattern: str) -> int:
    """The first line matching `pattern`."""
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_a_piped_execution_shows_each_step_as_it_starts_inside_an_actions_group(
    make_repo, tmp_path, monkeypatch
):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    go = tmp_path / "go"
    # the step ends only once the test has read its line: the line came while the step ran
    wait = f"echo waiting; while [ ! -e {go} ]; do sleep 0.01; done; echo released"
    add_improvement(
        repo,
        "title: t\nvalidation: {final: [tests]}\nsteps:\n"
        f"  - {{name: wait, run: '{wait}', timeout: 60}}\n"
        "  - {name: w, write: {path: data/w.txt, content: ok}}\n",
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    proc = start_tars(repo, "execute", "--improvement-id", "imp", "--verbose")
    assert proc.stdout is not None
    seen = []
    while not (line := proc.stdout.readline()).startswith("1. wait started"):
        assert line, "".join(seen) + proc.communicate()[1]
        seen.append(line)
    go.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    lines = [line.rstrip("\n") for line in seen] + ["1. wait started", *lines_of(out)]

    group = lines.index("::group::output of step 1. wait")
    token = lines[group + 1].removeprefix("::stop-commands::")
    assert lines[group + 1 : group + 5] == [f"::stop-commands::{token}", "waiting", "released",
                                            f"::{token}::"]  # fmt: skip
    assert lines[group + 5] == "::endgroup::"
    assert re.fullmatch(r"1\. wait changed nothing \(\d+\.\ds\)", lines[group + 6])
    assert lines[group + 7] == "2. w started"
    assert re.fullmatch(r"2\. w applied \(\d+\.\ds\)", lines[group + 8])
    tests_run = index(lines, r"^  tests on \w{7} \(step 2\) started$")
    assert lines.index("validation started") < tests_run < index(lines, r"^::group::nox session")
    assert re.search(
        r"^  tests on \w{7} \(step 2\) passed: 6 passed \(\d+\.\ds\)$", out, re.MULTILINE
    )
    assert "succeeded on branch tars-bot/imp with 2 of 2 steps (1 changed nothing)" in out


def test_verbose_output_comes_under_the_line_of_the_step_that_printed_it(cli, make_repo):
    repo = make_repo()
    add_improvement(repo, "title: t\nsteps: [{name: say, run: 'echo said by the step'}]\n")
    result = cli("execute", "--repo", repo, "--improvement-id", "imp", "--verbose")
    assert result.code == 0, result.err
    lines = lines_of(result.out)
    started = lines.index("1. say started")
    assert lines[started + 1 : started + 3] == ["--- output of step 1. say", "said by the step"]
    assert lines[started + 3].startswith("1. say changed nothing (")
    assert not any(line.startswith("::") for line in lines)  # not in Actions: no group


@pytest.fixture
def long_names(cli, make_repo) -> tuple[Path, str]:
    """A repository whose executions have a long branch and long paths: (repo, id)."""
    long_path = "src/" + "deeply/nested/" * 6 + "module_with_a_long_name.py"
    repo = make_repo(
        {"pyproject.toml": f'[tool.tars-bot]\nbranch_prefix = "{LONG_BRANCH_PREFIX}"\n'}
    )
    add_improvement(
        repo,
        f"title: t\nsteps:\n  - {{name: w, write: {{path: {long_path}, content: x}}}}\n"
        "  - {name: noop, run: 'true'}\n",
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    return repo, history(cli, repo)[0]["id"]


def test_piped_tables_are_never_cut_or_wrapped(cli, long_names):
    repo, execution_id = long_names
    listed = lines_of(cli("history", "--repo", repo).out)
    [row] = [line for line in listed if line.startswith(execution_id)]
    assert f"{LONG_BRANCH_PREFIX}imp" in row and "…" not in row
    assert "succeeded" in row and "2/2" in row  # the no-op step is done too
    status = cli("status", "--repo", repo, "--execution-id", execution_id).out
    assert f"{LONG_BRANCH_PREFIX}imp" in status and "…" not in status
    plan = cli("plan", "--repo", repo, "--improvement-id", "imp").out
    assert "src/" + "deeply/nested/" * 6 + "module_with_a_long_name.py" in plan
    view = lines_of(cli("sandbox", "--repo", repo).out)
    assert all("…" not in line for line in view)


def test_states_are_shown_in_words_and_kept_raw_in_json(cli, make_repo):
    repo = make_repo()
    add_improvement(repo, "title: t\nsteps: [{name: s, run: 'exit 3'}]\n")
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 1
    [execution] = history(cli, repo)
    assert execution["state"] == "rolled_back"
    for text in (
        result.out,
        cli("history", "--repo", repo).out,
        cli("status", "--repo", repo, "--execution-id", execution["id"]).out,
    ):
        assert "rolled back" in text and "rolled_back" not in text, text
    stats = cli("stats", "--repo", repo).out
    assert "rolled_back" not in stats


def test_an_interrupted_execution_says_so_in_words(cli, make_repo):
    repo = make_repo()
    add_improvement(repo, "title: t\nsteps: [{name: s, run: 'sleep 60'}]\n")
    proc = start_tars(repo, "execute", "--improvement-id", "imp")
    assert proc.stdout is not None
    while not proc.stdout.readline().startswith("1. s started"):
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)  # and closes its pipes
    assert proc.returncode == 130
    [execution] = history(cli, repo)
    assert (execution["state"], execution["failure_reason"]) == ("interrupted", "KeyboardInterrupt")
    status = cli("status", "--repo", repo, "--execution-id", execution["id"]).out
    assert "stopped by Ctrl-C" in status and "KeyboardInterrupt" not in status


SCHEMAS = Path(__file__).parent.parent / "docs" / "schemas"
KINDS = (
    "improvement", "plan", "execution", "history", "stats", "validate", "sandbox", "check",
    "promote", "pending", "error",
)  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_the_published_schemas_are_what_schema_prints(cli, kind):
    printed = cli("schema", "--kind", kind).out
    assert printed == (SCHEMAS / f"{kind}.json").read_text(), f"run: tars-bot schema --kind {kind}"


def conforms(text: str, kind: str) -> dict:
    """`text` parsed, having checked it against the published schema of `kind`."""
    document = json.loads(text)
    schema = json.loads((SCHEMAS / f"{kind}.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    return document


def test_every_json_output_carries_its_format_and_conforms_to_its_schema(cli, make_repo, tmp_path):
    repo, _ = make_validated_repo(make_repo, tmp_path)
    add_improvement(
        repo,
        "title: t\nvalidation: {final: [tests]}\nsteps: [{name: w, write: {path: data/w.txt, content: ok}}]\n",
    )
    plan = conforms(
        cli("plan", "--repo", repo, "--improvement-id", "imp", "--format", "json").out, "plan"
    )
    assert plan["format"] == "tars-bot.plan/1"
    assert cli("execute", "--repo", repo, "--improvement-id", "imp").code == 0
    [listed] = conforms(cli("history", "--repo", repo, "--format", "json").out, "history")
    status = cli("status", "--repo", repo, "--execution-id", listed["id"], "--format", "json")
    assert conforms(status.out, "execution") == listed
    assert listed["format"] == "tars-bot.execution/1"
    validated = cli("validate", "--repo", repo, "--execution-id", listed["id"], "--format", "json")
    assert conforms(validated.out, "validate")["format"] == "tars-bot.validate/1"
    stats = conforms(cli("stats", "--repo", repo, "--format", "json").out, "stats")
    assert (stats["format"], stats["by_state"]) == ("tars-bot.stats/1", {"succeeded": 1})
    sandbox = cli("sandbox", "--repo", repo, "--format", "json").out
    assert conforms(sandbox, "sandbox")["format"] == "tars-bot.sandbox/1"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--execution-id", "nope"],  # our error
        ["status", "--format=json"],  # argparse's: no --execution-id
        ["history", "--limit", "0"],  # argparse's: a bad value
    ],
    ids=["user error", "missing option", "bad value"],
)
def test_with_format_json_an_error_is_json_on_stdout(cli, make_repo, args):
    repo = make_repo()
    result = cli(*args, "--repo", repo, "--format", "json")
    assert result.code == 2
    error = conforms(result.out, "error")
    assert error["format"] == "tars-bot.error/1"
    [problem] = error["error"]["problems"]
    assert error["error"]["exit_code"] == 2 and problem in result.err  # people still read it


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_a_dry_run_diff_is_coloured_on_a_terminal_unless_no_color(
    cli, make_repo, monkeypatch, no_color
):
    repo = make_repo({"a.txt": "old\n"})
    add_improvement(
        repo, 'title: t\nsteps: [{name: w, write: {path: a.txt, content: "new\\e[2J"}}]\n'
    )
    monkeypatch.setenv("FORCE_COLOR", "1")  # stdout as a terminal, as rich reads it
    monkeypatch.setenv("TERM", "xterm-256color")
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    result = cli("execute", "--repo", repo, "--improvement-id", "imp", "--dry-run")
    assert result.code == 0, result.err
    diff = result.out[result.out.index("diff --git") - 10 :]
    assert "new\\x1b[2J" in diff  # the improvement's escape is shown, never sent
    assert ("\x1b[32m+new" in diff and "\x1b[31m-old" in diff) is not no_color
    assert ("\x1b[3" in result.out) is not no_color  # no colour anywhere with NO_COLOR
