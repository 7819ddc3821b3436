"""Comment commands: parsing, the webhook payload, and who is obeyed (against the fake GitHub)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tars_bot.errors import TarsError
from tars_bot.github.client import GitHubClient
from tars_bot.github.commands import (
    USAGE,
    Command,
    CommandError,
    CommentEvent,
    authorize,
    command_line,
    parse_command,
    parse_event,
)
from tests.fake_github import FakeGitHub, Repo

PAYLOAD = Path(__file__).parent / "data" / "issue_comment.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/tars-bot plan", Command("plan")),
        ("/tars-bot execute", Command("execute")),
        ("/tars-bot execute --dry-run", Command("execute", dry_run=True)),
        ("/tars-bot status", Command("status")),
        ("/tars-bot rollback", Command("rollback")),
        ("/tars-bot rollback --step 2", Command("rollback", step=2)),
        ("/tars-bot rollback --step 3 --cascade", Command("rollback", step=3, cascade=True)),
        ("/tars-bot rollback --step=4", Command("rollback", step=4)),
        ("/tars-bot history", Command("history")),
        ("/tars-bot help", Command("help")),
        ("/tars-bot   plan  \r\nthe rest is a note", Command("plan")),
        ("/tars-bot execute --digest " + "ab12" * 4, Command("execute", digest="ab12" * 4)),
        (
            "/tars-bot execute --dry-run --digest " + "0" * 64,
            Command("execute", dry_run=True, digest="0" * 64),
        ),
    ],
)
def test_every_verb_parses(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("/tars-bot", "missing command"),
        ("/tars-bot deploy", "invalid choice: 'deploy'"),
        ("/tars-bot execute --force", "unrecognized arguments: --force"),
        ("/tars-bot execute --dry", "unrecognized arguments: --dry"),
        ("/tars-bot plan --dry-run", "unrecognized arguments: --dry-run"),
        ("/tars-bot rollback --step two", "expected a step number from 1, found 'two'"),
        ("/tars-bot rollback --step 0", "expected a step number from 1, found '0'"),
        ("/tars-bot rollback --step", "expected one argument"),
        ("/tars-bot rollback --cascade", "--cascade needs --step N"),
        ("/tars-bot help me", "unrecognized arguments: me"),
        ('/tars-bot plan "unclosed', "cannot read the command: No closing quotation"),
        ("/tars-bot execute --digest abc", "expected 16 to 64 hex digits"),
        ("/tars-bot execute --digest " + "G" * 16, "expected 16 to 64 hex digits"),
    ],
)
def test_bad_commands_say_what_is_wrong_and_show_usage(text, problem):
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    message = str(caught.value)
    assert problem in message.splitlines()[0]
    assert message.endswith(USAGE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "LGTM",
        "please run /tars-bot plan",
        "/tars-botplan",
        "/tars-bot-ng plan",
        "> /tars-bot plan",
        "thanks!\n/tars-bot plan",
        "\n/tars-bot plan",  # as written: the shipped workflow's filter skips these too
        "  /tars-bot plan",
    ],
)
def test_other_comments_are_not_commands(text):
    assert parse_command(text) is None


@given(st.text())
def test_any_text_is_a_command_nothing_or_a_command_error(text):
    try:
        result = parse_command(text)
    except CommandError:
        return
    assert result is None or isinstance(result, Command)


def test_parse_event_from_a_real_shaped_payload():
    event = parse_event(json.loads(PAYLOAD.read_text()))
    assert event == CommentEvent(
        action="created",
        comment_id=1988310457,
        body="/tars-bot execute --dry-run\r\nLet's see the diff first.",
        user_login="mona",
        user_type="User",
        issue_number=17,
        is_pull_request=True,
        repository="octo-org/app",
        sender="mona",
        installation_id=48211977,
        issue_body="Steps, checks and benefits of execution 20240311-091355-3f2a.\n\n"
        "<!-- tars-bot:execution=20240311-091355-3f2a -->",
    )
    assert parse_command(event.body) == Command("execute", dry_run=True)


def test_a_comment_on_an_issue_is_not_on_a_pull_request():
    payload = json.loads(PAYLOAD.read_text())
    del payload["issue"]["pull_request"], payload["installation"]
    payload["issue"]["body"] = None  # an issue without a description
    event = parse_event(payload)
    assert (event.is_pull_request, event.installation_id, event.issue_body) == (False, None, "")
    del payload["issue"]["body"]
    assert parse_event(payload).issue_body is None  # unknown: nothing to bind an execute to


def test_a_payload_of_another_event_is_a_tars_error():
    with pytest.raises(TarsError, match="not an issue_comment event: no 'comment' in the payload"):
        parse_event({"action": "opened", "pull_request": {}})


# -- authorization ---------------------------------------------------------------------------------
@pytest.fixture
def repo(fake_github: FakeGitHub) -> Repo:
    repo = fake_github.add_repo("octo-org/app")
    repo.add_collaborator("ada", "admin")
    repo.add_collaborator("max", "maintain")
    repo.add_collaborator("wes", "write")
    repo.add_collaborator("tia", "triage")
    repo.add_collaborator("rod", "read")
    return repo


@pytest.fixture
def client(fake_github: FakeGitHub, repo: Repo) -> Iterator[GitHubClient]:
    env = {
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_REPOSITORY": repo.full_name,
    }
    with GitHubClient.from_env(env, pace=False) as client:
        yield client


def _event(login: str = "wes", **changes: object) -> CommentEvent:
    event = parse_event(json.loads(PAYLOAD.read_text()))
    return dataclasses.replace(event, user_login=login, sender=login, **changes)


@pytest.mark.parametrize(
    ("login", "permission"), [("ada", "admin"), ("max", "maintain"), ("wes", "write")]
)
def test_writers_maintainers_and_admins_are_obeyed(client, login, permission):
    decision = authorize(client, _event(login))
    assert decision.allowed
    assert decision.reason == f"{login} has {permission} permission"
    assert decision.reply is None


@pytest.mark.parametrize(("login", "held"), [("rod", "read"), ("tia", "triage"), ("eve", "read")])
def test_others_are_refused_politely(client, login, held):
    decision = authorize(client, _event(login))
    assert not decision.allowed
    assert decision.reply is not None
    assert decision.reply.startswith(
        f"Sorry @{login}, tars-bot only takes commands from people with write, maintain or admin "
        f"permission on this repository, and you have {held} permission."
    )
    # the refusal carries our marker, so tars-bot never answers its own reply
    assert authorize(client, _event("wes", body=decision.reply)).reply is None


def test_no_access_at_all_is_refused(fake_github, client, repo):
    repo.private = True
    decision = authorize(client, _event("eve"))
    assert not decision.allowed
    assert "and you have no permission" in (decision.reply or "")


def test_the_allowed_roles_are_configurable(client):
    assert authorize(
        client, _event("tia"), allowed={"triage", "write", "maintain", "admin"}
    ).allowed
    decision = authorize(client, _event("wes"), allowed={"admin"})
    assert not decision.allowed
    assert "people with admin permission" in (decision.reply or "")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"action": "edited"}, "was edited, not created"),
        ({"action": "deleted"}, "was deleted, not created"),
        ({"user_type": "Bot", "user_login": "dependabot[bot]"}, "is by a bot, dependabot[bot]"),
        ({"body": "Done.\n<!-- tars-bot:execution=1 -->\n/tars-bot plan"}, "is tars-bot's own"),
    ],
)
def test_edits_bots_and_our_own_comments_are_ignored_without_asking_github(
    fake_github, client, changes, reason
):
    decision = authorize(client, dataclasses.replace(_event("ada"), **changes))
    assert (decision.allowed, decision.reply) == (False, None)
    assert reason in decision.reason
    assert fake_github.requests == []


COMMENT_BODIES = json.loads((PAYLOAD.parent / "comment_bodies.json").read_text())


@pytest.mark.parametrize("case", COMMENT_BODIES, ids=lambda case: repr(case["body"]))
def test_the_table_of_comment_bodies_agrees_with_the_shipped_workflow_s_filter(case):
    """tests/data/comment_bodies.json, which the Action's and the app's tests also run: the
    parser takes a command only where the workflow's job filter lets the comment through."""
    import yaml

    workflow = Path(__file__).parent.parent / ".github" / "workflows" / "tars-bot.yml"
    job = yaml.safe_load(workflow.read_text())["jobs"]["authorize"]
    assert "startsWith(github.event.comment.body, '/tars-bot')" in job["if"]
    assert command_line(case["body"]) == case["line"]
    assert case["line"] is None or case["body"].startswith("/tars-bot")
    try:
        valid = parse_command(case["body"]) is not None
    except CommandError:
        valid = False
    assert valid is case["valid"]
