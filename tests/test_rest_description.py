"""The fake GitHub holds every request to GitHub's published REST description: what GitHub's
description does not take is answered 422 and recorded, and the `fake_github` fixture fails the
test that sent it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from github import Auth, Github, GithubException

from tests import rest_description
from tests.fake_github import _ROUTES, FakeGitHub

ISSUE = "/repos/octo/app/issues/1"
OFF_SCHEMA = [  # (method, path, body, what the violation says)
    ("POST", f"{ISSUE}/labels", ["tars-bot"], "not valid under any of the given schemas"),
    ("POST", f"{ISSUE}/labels", "tars-bot", "not valid under any of the given schemas"),
    ("POST", f"{ISSUE}/labels", {"labels": []}, "not valid under any of the given schemas"),
    ("POST", f"{ISSUE}/labels", {"labels": "x"}, "not valid under any of the given schemas"),
    ("POST", f"{ISSUE}/comments", None, "the request body is required"),
    ("POST", f"{ISSUE}/comments", {"text": "hi"}, "'body' is a required property"),
    ("PATCH", ISSUE, {"state": "merged"}, "'merged' is not one of ['open', 'closed']"),
    ("PATCH", ISSUE, {"title": "t", "colour": "red"}, "body field 'colour' is not in"),
    ("POST", "/repos/octo/app/pulls", {"head": "b", "base": "main", "draft": "yes"}, "'yes'"),
    ("GET", "/repos/octo/app/pulls?state=merged", None, "query state='merged'"),
    ("GET", "/repos/octo/app/pulls?sha=abc", None, "query parameter 'sha' is not in"),
    ("GET", ISSUE, {"title": "t"}, "this operation takes no request body"),
]


@pytest.fixture
def github(fake_github: FakeGitHub) -> Any:
    fake_github.add_repo("octo/app").add_issue("an issue")
    with Github(base_url=fake_github.url, auth=Auth.Token(fake_github.token)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "says"), OFF_SCHEMA)
def test_a_request_off_the_description_is_refused_and_recorded(
    github, fake_github, method, path, body, says
):
    with pytest.raises(GithubException) as caught:
        github.requester.requestJsonAndCheck(method, fake_github.url + path, input=body)
    assert caught.value.status == 422
    assert "Invalid request" in caught.value.data["message"]
    violations = fake_github.violations
    assert all(v.startswith(f"{method} {path.partition('?')[0]}: ") for v in violations)
    assert any(says in v for v in violations), violations
    fake_github.violations.clear()  # seen: the fixture's own check would fail this test


def test_requests_on_the_description_pass(github, fake_github):
    repo = github.get_repo("octo/app")
    issue = repo.get_issue(1)
    issue.create_comment("hi")
    issue.edit(title="renamed", state="closed")
    github.requester.requestJsonAndCheck(
        "POST", f"{issue.url}/labels", input={"labels": ["a", {"name": "b"}]}
    )
    assert [p.number for p in repo.get_pulls(state="all", base="main")] == []
    assert fake_github.violations == []
    assert fake_github.repos["octo/app"].issues[1].labels == ["a", "b"]


def test_pygithub_s_own_add_to_labels_is_off_the_description(github, fake_github):
    """Why tars-bot posts labels itself: PyGithub sends a bare array, which the description
    does not take (a server that follows it answers 422)."""
    with pytest.raises(GithubException):
        github.get_repo("octo/app").get_issue(1).add_to_labels("tars-bot")
    assert "not valid under any of the given schemas" in fake_github.violations.pop()


def test_every_route_of_the_fake_is_an_operation_of_the_description():
    data = json.loads(rest_description.FILE.read_text())
    assert data["source"]["package"] == "@octokit/openapi"
    assert data["source"]["integrity"].startswith("sha512-")
    served = {op.key for op, _ in _ROUTES}
    assert served <= set(data["operations"]) and len(served) >= 20
    with pytest.raises(KeyError, match="add it with"):
        rest_description.operation("GET /repos/{owner}/{repo}/nothing-like-this")


def test_trimming_keeps_constraints_and_spells_nullable_as_json_schema():
    schema = {
        "type": "object",
        "description": "prose",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "example": "x", "nullable": True},
            "description": {"type": "string"},  # a field named like a prose key stays
        },
        "x-github": {"internal": True},
    }
    assert rest_description._trim(schema) == {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": ["string", "null"]}, "description": {"type": "string"}},
    }
