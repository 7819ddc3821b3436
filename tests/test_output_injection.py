"""A hostile improvement's text and output, shown where people read them: the terminal, the GitHub
Actions log, pull request bodies and comments. Each is shown as written, and acts as nothing
there: no escape sequence, no workflow command, no link, image, mention, HTML or marker."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tars_bot.github import action
from tars_bot.github.client import GitHubClient
from tests.helpers import add_improvement, comment_payload, environ, run_tars, write_files

HOSTILE = "![i](http://x/y.png) [l](http://x) @someone <!-- tars-bot:execution=fake --> <b>"
# what a step prints: workflow commands, a terminal title (OSC 0), the clipboard (OSC 52)
PRINTS = r"::add-mask::x\n::error::pwned\n\033]0;owned\007\033]52;c;cGF3bmVk\007\n\033[2J"
BASE = {
    "pyproject.toml": """\
        [project]
        name = "pkg"

        [tool.tars-bot]
        components = { core = ["src/**"] }
        """,
    "src/pkg/__init__.py": "",
}


def improvement(run: str, components: str = "core") -> str:
    body = "\n".join(f"          {line}" for line in run.strip().splitlines())
    return (
        f"title: {json.dumps(HOSTILE)}\ntarget_components: [{json.dumps(components)}]\n"
        f"steps:\n  - name: {json.dumps(HOSTILE)}\n    run: |\n{body}\n"
    )


def active_commands(log: str) -> list[str]:
    """The workflow commands the Actions runner would act on in `log`: lines starting `::`,
    but for those between `::stop-commands::TOKEN` and `::TOKEN::`."""
    active, stopped_by = [], None
    for line in log.splitlines():
        if stopped_by is not None:
            stopped_by = None if line == f"::{stopped_by}::" else stopped_by
        elif line.startswith("::stop-commands::"):
            stopped_by = line.removeprefix("::stop-commands::")
        elif line.startswith("::"):
            active.append(line)
    return active


def assert_inert_in_a_terminal(text: str) -> None:
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), text  # no ESC, BEL, CR...
    assert "\\x1b]0;owned\\x07" in text or "owned" not in text  # shown, not acted on


@pytest.fixture
def repo(make_repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # as on a runner: stdout is the job's log
    return make_repo(BASE)


@pytest.mark.parametrize("verbose", [True, False], ids=["streamed", "failure tail"])
def test_step_output_acts_on_neither_the_terminal_nor_the_actions_log(repo, verbose):
    add_improvement(repo, improvement(f"printf '{PRINTS}'\nexit 1"))
    proc = run_tars(repo, "execute", "--improvement-id", "imp", *(["-v"] * verbose))

    assert proc.returncode == 1
    assert "::add-mask::x" in proc.stdout and "::error::pwned" in proc.stdout  # shown
    # but nothing the runner would act on, only tars-bot's own folding of the step's output
    ours = ["::group::output of step 1. " + HOSTILE, "::endgroup::"] if verbose else []
    assert active_commands(proc.stdout) == ours
    assert_inert_in_a_terminal(proc.stdout)
    assert "\\x1b]52;c;cGF3bmVk\\x07" in proc.stdout
    tokens = re.findall(r"^::stop-commands::(\w+)$", proc.stdout, re.MULTILINE)
    assert tokens and len(set(tokens)) == len(tokens) and all(len(t) == 32 for t in tokens)


def test_status_log_and_the_dry_run_diff_are_shown_inert(repo):
    add_improvement(repo, improvement(f"printf '{PRINTS}'\nprintf '{PRINTS}' > src/pkg/x.txt"))
    proc = run_tars(repo, "execute", "--improvement-id", "imp", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "+::add-mask::x" in proc.stdout  # the diff of what the step wrote
    assert active_commands(proc.stdout) == [] and "::error::pwned" in proc.stdout
    assert_inert_in_a_terminal(proc.stdout)

    [execution] = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    log = run_tars(repo, "status", "--execution-id", execution["id"], "--log", "1").stdout
    assert "::add-mask::x" in log and active_commands(log) == []
    assert_inert_in_a_terminal(log)


def test_a_file_name_with_a_newline_keeps_the_verdict_on_one_line(repo):
    # outside the step's scope: the reason the execution failed names the file
    add_improvement(repo, improvement("printf x > \"$(printf 'a\\nb.py')\""))
    proc = run_tars(repo, "execute", "--improvement-id", "imp")

    assert proc.returncode == 1
    verdict = proc.stdout.splitlines()[-1]
    assert "a\\nb.py" in verdict and "outside its scope" in verdict, proc.stdout
    assert not any(line.startswith("b.py") for line in proc.stdout.splitlines())


def test_plans_show_file_names_quoted_and_titles_without_escapes(repo):
    title = "[bold]not bold[/bold] \x1b]0;owned\x07"
    add_improvement(
        repo,
        f"title: {json.dumps(title)}\ntarget_components: [core]\nsteps:\n"
        '  - {name: "w\\u001b[31mred", write: {path: "src/pkg/a\\u001b[31mb.py", content: x}}\n',
    )
    proc = run_tars(repo, "plan", "--improvement-id", "imp")

    assert proc.returncode == 0, proc.stderr
    assert '"src/pkg/a\\033[31mb.py"' in proc.stdout  # as git quotes it
    assert "[bold]not bold[/bold]" in proc.stdout  # rich markup shown, not applied
    assert "w\\x1b[31mred" in proc.stdout
    assert_inert_in_a_terminal(proc.stdout)


# GitHub: the Action, against the fake REST server


def run_action(fake_github, tmp_path: Path, checkout: Path, event: str, payload: dict) -> int:
    env = environ(fake_github, tmp_path, event, payload) | {"GITHUB_ACTIONS": "true"}
    return action.run(
        env, checkout, lambda e: GitHubClient.from_env(e, sleep=lambda s: None, pace=False)
    )


def issue_body(run: str) -> str:
    steps = "\n".join(f"        {line}" for line in run.strip().splitlines())
    return (
        "Hostile.\n\n```yaml\ntarget_components: ['**']\nsteps:\n"
        f"  - name: {json.dumps(HOSTILE)}\n    run: |\n{steps}\n```\n"
    )


def assert_renders_nothing(markdown: str) -> None:
    """No image, link, mention, HTML tag or comment that the hostile text brought."""
    assert "![i](" not in markdown and "[l](" not in markdown
    assert "@someone" not in markdown
    assert "<b>" not in markdown and "<!-- tars-bot:execution=fake" not in markdown
    assert markdown.count("<!--") == markdown.count("<!-- tars-bot:")  # only tars-bot's markers


def test_pull_request_body_and_comments_render_nothing_of_the_improvement(
    setup,
    fake_github,
    tmp_path,
):
    checkout, _, repo = setup
    issue = repo.add_issue(HOSTILE, issue_body("printf '::add-mask::x\\n' > NOTES.md"))
    payload = comment_payload(repo, issue.number, "/tars-bot execute")
    assert run_action(fake_github, tmp_path, checkout, "issue_comment", payload) == 0

    [pull] = repo.pulls()
    assert_renders_nothing(pull.body)
    assert "!\\[i\\](http://x/y.png)" in pull.body and "&lt;b&gt;" in pull.body  # as written
    assert re.search(r"<!-- tars-bot:execution=[\w.-]+ -->\s*\Z", pull.body)
    for comment in repo.comments_on(issue.number):
        if comment.user != "writer":
            assert_renders_nothing(comment.body)
    path_ = f"/repos/octo/app/issues/comments/{repo.comments_on(issue.number)[-1].id}"
    edits = [
        r.json["body"] for r in fake_github.requests if r.method == "PATCH" and r.path == path_
    ]
    assert edits and all("@someone" not in edit and "![i](" not in edit for edit in edits)


def test_a_failed_steps_output_stays_in_its_code_block_and_out_of_the_log(
    setup,
    fake_github,
    tmp_path,
    capsys,
):
    checkout = setup[0]
    breakout = "printf '````\\n![x](http://evil/t.png) @org/team\\n::add-mask::x\\n'\nexit 1"
    improvements = checkout / ".tars" / "improvements"
    write_files(improvements, {"hostile.yaml": improvement(breakout, "**")})
    payload = {"inputs": {"improvement-id": "hostile"}, "sender": {"login": "writer"}}
    assert run_action(fake_github, tmp_path, checkout, "workflow_dispatch", payload) == 1

    log = capsys.readouterr().out
    assert "::add-mask::x" in log and active_commands(log) == []
    assert_renders_nothing(log)
    # the output in a fence longer than any run of backticks in it
    assert "`````\n" in log and "\n````\n![x](http://evil/t.png) @org/team" in log
