"""Every workflow tars-bot ships (its own, action.yml, the one `init` writes) uses only
references GitHub accepts, and its own tars-bot workflow is the template `init` writes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from tars_bot.github.client_session import READ_ONLY
from tars_bot.onboarding import workflow

ROOT = Path(__file__).parent.parent
OWN = ROOT / workflow.WORKFLOW_PATH


def _shipped() -> list[tuple[str, str]]:
    files = [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in workflow.workflow_files(ROOT)]
    files.append(("action.yml", (ROOT / "action.yml").read_text()))
    files.append(("init's template", workflow.render(workflow.default_action(), ["CI"])))
    return files


@pytest.mark.parametrize(("name", "text"), _shipped(), ids=[n for n, _ in _shipped()])
def test_every_shipped_reference_is_one_github_accepts(name, text):
    found = list(workflow.references(yaml.safe_load(text)))
    assert found, f"{name}: no uses: found (the walk missed them?)"
    refused = [(where, uses, workflow.uses_problem(uses)) for where, uses in found]
    assert [r for r in refused if r[2] is not None] == []


@pytest.mark.parametrize(
    "uses",
    [
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
        "tars-bot/tars-bot@v0.1.0",
        "owner/repo/path/to/action@main",
        "owner/repo/.github/workflows/reusable.yml@v1",
        "./",
        "./.tars-bot-action",
        "docker://alpine:3.20",
    ],
)
def test_references_github_accepts(uses):
    assert workflow.uses_problem(uses) is None


@pytest.mark.parametrize(
    "uses",
    [
        "$/",  # the shipped workflow's, before: not a self-reference, nor owner/repo@ref
        "$/action.yml",  # a self-repository reference, which GitHub has not enabled
        "actions/checkout",  # no ref
        "actions/checkout@",  # an empty ref
        "actions@v4",  # no repository
        "/checkout@v4",  # an empty owner
        "owner/repo@v1@v2",  # two @
        "../action",  # only ./ is a local path
        "docker://",
        "",
        None,
    ],
)
def test_references_github_refuses(uses):
    assert workflow.uses_problem(uses) is not None


def test_own_workflow_is_the_template_with_a_trusted_local_action():
    """Regenerate with: python -c 'from tars_bot.onboarding import workflow as w;
    print(w.render(w.OWN_ACTION, ["CI"], trusted_checkout=True), end="")' > OWN"""
    own = workflow.render(workflow.OWN_ACTION, ["CI"], trusted_checkout=True)
    assert OWN.read_text() == own


def test_own_local_action_is_checked_out_from_the_default_branch_first():
    """`uses: ./PATH` runs what is in the workspace: on a pull request that would be its head's
    action.yml, so each job checks the default branch out at PATH just before."""
    document = yaml.safe_load(OWN.read_text())
    local = 0
    for job in document["jobs"].values():
        steps = job["steps"]
        for before, step in itertools.pairwise(steps):
            if not str(step.get("uses", "")).startswith("./"):
                continue
            local += 1
            assert before["uses"].startswith("actions/checkout@")
            assert before["with"]["path"] == step["uses"].removeprefix("./")
            assert before["with"]["ref"] == "${{ github.event.repository.default_branch }}"
            assert before["with"]["persist-credentials"] is False
    assert local == 3


def test_app_manifest_asks_for_what_serve_uses():
    """The App `serve` runs acts on comments only; it reacts and comments (issues), reads a pull
    request's head and, with --local-workers, opens pull requests (pull_requests), pushes
    (contents), publishes check runs (checks), and otherwise dispatches the workflow (actions)."""
    manifest = json.loads((ROOT / "docs" / "github-app-manifest.json").read_text())
    assert manifest["default_events"] == ["issue_comment"]
    assert manifest["hook_attributes"]["url"].endswith("/webhook")
    permissions = manifest["default_permissions"]
    assert set(READ_ONLY) <= set(permissions)  # what a local execute's narrowed token keeps
    for name in ("issues", "pull_requests", "contents", "checks", "actions"):
        assert permissions[name] == "write", name


def test_init_check_passes_on_this_repository(cli):
    result = cli("init", "--check", "--repo", ROOT)
    assert result.code == 0, result.err
    assert ".github/workflows/tars-bot.yml" in result.out
