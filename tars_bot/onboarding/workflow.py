"""The tars-bot workflow: rendered from the template shipped with the package, and GitHub's rules
for the `uses:` references in any workflow or action."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tars_bot.errors import TarsError
from tars_bot.version import __version__

WORKFLOW_PATH = ".github/workflows/tars-bot.yml"
PUBLISHED_ACTION = "tars-bot/tars-bot"
DEFAULT_WORKFLOWS = ("CI",)
# tars-bot's own workflow runs the action.yml of its default branch, checked out here
OWN_ACTION = "./.tars-bot-action"
_TRUSTED_CHECKOUT = """\
# tars-bot's own action as the default branch has it, never a pull request's. Not zizmor's
# self-repository `$/...`: that is the workflow's commit (a pull request's merge, on
# pull_request), and GitHub's runner refuses a bare `$/`.
- uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
  with:
    ref: ${{ github.event.repository.default_branch }}
    path: .tars-bot-action
    persist-credentials: false
- uses: @ACTION@ # zizmor: ignore[self-repository]"""
_ACTION_STEP = re.compile(r"^(?P<indent> *)- uses: @ACTION@$", re.MULTILINE)
# the `workflow_run:` trigger and its indented lines
_WATCH_TRIGGER = re.compile(r"^  workflow_run:.*\n(?:    .*\n)+", re.MULTILINE)


def default_action() -> str:
    """The published action at the tag of this version."""
    return f"{PUBLISHED_ACTION}@v{__version__}"


def render(
    action: str,
    workflows: list[str],
    branch: str = "main",
    improvements_dir: str = ".tars/improvements",
    trusted_checkout: bool = False,
) -> str:
    """The workflow with every tars-bot step using `action`; with `trusted_checkout`, each is
    preceded by a checkout of the default branch where `action` (a local path) finds it."""
    text = resources.files(__package__).joinpath("workflow.yml").read_text(encoding="utf-8")
    if trusted_checkout:
        text = _ACTION_STEP.sub(_with_checkout, text)
    if not workflows:  # a name GitHub does not know fails `init --check`: left for the user
        text = _WATCH_TRIGGER.sub(_commented, text)
    for mark, value in (
        ("@WORKFLOWS@", json.dumps(workflows or list(DEFAULT_WORKFLOWS))),
        ("@BRANCH@", branch),
        ("@IMPROVEMENTS@", improvements_dir.strip("/")),
        ("@ACTION@", action),
    ):
        text = text.replace(mark, value)
    return text


def _commented(match: re.Match[str]) -> str:
    lines = match.group(0).splitlines(keepends=True)
    note = "  # no other workflow yet: name your CI workflows here and uncomment these lines\n"
    return note + "".join(f"  # {line[2:]}" for line in lines)


def _with_checkout(match: re.Match[str]) -> str:
    indent = match["indent"]
    return "\n".join(indent + line for line in _TRUSTED_CHECKOUT.splitlines())


# GitHub's rules for `uses:`, as the runner applies them (actions/runner,
# `ActionReferenceBuilder.TryParse` with `PipelineConstants.TryParseSelfRepository`):
# "docker://IMAGE"; a path "./..." in the workspace; "$/PATH", a self-repository reference the
# runner accepts only with a non-empty path and only where that syntax is enabled (so never
# here); otherwise the value splits on "@" into exactly two parts, the first on "/" (empty parts
# dropped) into at least owner and repo, and the ref must not be empty, else "Expected format
# {org}/{repo}[/path]@ref".
def uses_problem(uses: object) -> str | None:
    """Why GitHub would refuse `uses`, or None when it accepts it."""
    if not isinstance(uses, str) or not uses:
        return f"expected a string, found {uses!r}"
    if uses.startswith("docker://"):
        return None if len(uses) > len("docker://") else "docker:// names no image"
    if uses.startswith(("./", ".\\")):
        return None
    if uses.startswith("$/"):
        return (
            f"{uses!r}: a self-repository reference GitHub does not accept; use "
            "OWNER/REPO@REF (or ./PATH after checking that path out)"
        )
    parts = uses.split("@")
    path = [p for p in re.split(r"[/\\]", parts[0]) if p]
    if len(parts) != 2 or len(path) < 2 or not parts[1]:
        return f"{uses!r}: expected {{owner}}/{{repo}}[/path]@{{ref}}, ./PATH or docker://IMAGE"
    return None


def references(document: Any) -> Iterator[tuple[str, object]]:
    """(where, value) of every `uses:` in a workflow (jobs and their steps) or an action."""
    if not isinstance(document, dict):
        return
    jobs = document.get("jobs")
    if isinstance(jobs, dict):
        for name, job in jobs.items():
            if not isinstance(job, dict):
                continue
            if "uses" in job:
                yield f"jobs.{name}.uses", job["uses"]
            yield from _step_references(job.get("steps"), f"jobs.{name}.steps")
    runs = document.get("runs")
    if isinstance(runs, dict):
        yield from _step_references(runs.get("steps"), "runs.steps")


def _step_references(steps: object, where: str) -> Iterator[tuple[str, object]]:
    if not isinstance(steps, list):
        return
    for number, step in enumerate(steps, start=1):
        if isinstance(step, dict) and "uses" in step:
            yield f"{where}[{number}].uses", step["uses"]


def load(path: Path, display: str) -> Any:
    """A workflow file's document (YAML 1.1: PyYAML reads `on:` as True, see `triggers`)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise TarsError(f"{display}: cannot read: {one_line(str(e))}") from None


def one_line(text: str) -> str:
    return " ".join(text.split())


def triggers(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        return {}
    found = document.get("on", document.get(True))
    return found if isinstance(found, dict) else {}


def watched_names(document: Any) -> list[str]:
    """The names under `on.workflow_run.workflows`."""
    run = triggers(document).get("workflow_run")
    names = run.get("workflows") if isinstance(run, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def workflow_files(workdir: Path) -> list[Path]:
    folder = workdir / ".github" / "workflows"
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yml", ".yaml"))


def other_workflow_names(workdir: Path) -> list[str]:
    """The `name:` of each workflow but tars-bot's (the file name when it has none), as
    `workflow_run` needs them; unreadable files are left out (`init --check` reports them)."""
    names = []
    for path in workflow_files(workdir):
        if path.stem == "tars-bot":
            continue
        try:
            document = load(path, path.name)
        except TarsError:
            continue
        name = document.get("name") if isinstance(document, dict) else None
        names.append(str(name) if name else path.relative_to(workdir).as_posix())
    return names
