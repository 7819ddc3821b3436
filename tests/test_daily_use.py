"""Daily use: naming executions briefly, warnings about uncommitted inputs, unreadable journal
refs, and misspelt options."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import add_improvement, git

FILES = {"a.txt": "alpha\n", "b.txt": "beta\n"}
EDIT_A = """\
    title: edit a
    steps:
      - {name: A, edit: {path: a.txt, search: alpha, replace: ALPHA}}
    """
EDIT_B = """\
    title: edit b
    steps:
      - {name: B, edit: {path: b.txt, search: beta, replace: BETA}}
    """


def execute(cli, repo: Path, improvement_id: str) -> str:
    result = cli("execute", "--repo", repo, "--improvement-id", improvement_id)
    assert result.code == 0, result.err + result.out
    return json.loads(cli("history", "--repo", repo, "--format", "json", "--limit", "1").out)[0][
        "id"
    ]


@pytest.fixture
def two_executions(cli, make_repo) -> tuple[Path, str, str]:
    """A repository where improvement `a` then `b` were executed: (repo, id of a, id of b)."""
    repo = make_repo(FILES)
    add_improvement(repo, textwrap.dedent(EDIT_A), "a.yaml")
    add_improvement(repo, textwrap.dedent(EDIT_B), "b.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "improvements")
    return repo, execute(cli, repo, "a"), execute(cli, repo, "b")


def status_id(cli, repo: Path, *which: str) -> str:
    result = cli("status", "--repo", repo, "--format", "json", *which)
    assert result.code == 0, result.err
    return json.loads(result.out)["id"]


# -- naming executions ---------------------------------------------------------------------------
def test_an_execution_is_named_by_prefix_latest_or_improvement(cli, two_executions):
    repo, first, second = two_executions
    assert status_id(cli, repo, "--execution-id", "latest") == second
    assert status_id(cli, repo, "--improvement-id", "a") == first
    assert status_id(cli, repo, "--improvement-id", "b") == second
    unique = next(n for n in range(1, len(first)) if first[:n] != second[:n])
    assert status_id(cli, repo, "--execution-id", first[:unique]) == first
    validated = cli("validate", "--repo", repo, "--execution-id", "latest")
    assert "the plan has no final checks" in validated.err  # found it; nothing to run there
    rolled = cli("rollback", "--repo", repo, "--improvement-id", "a")
    assert rolled.code == 0, rolled.err
    assert f"rolled back execution {first}" in rolled.out
    assert git(repo, "branch", "--list", "tars-bot/a") == ""


def test_an_ambiguous_or_unknown_execution_is_a_usage_error(cli, two_executions):
    repo, first, second = two_executions
    common = next(first[:n] for n in range(len(first), 0, -1) if second.startswith(first[:n]))
    ambiguous = cli("status", "--repo", repo, "--execution-id", common)
    assert ambiguous.code == 2
    assert "ambiguous" in ambiguous.err and first in ambiguous.err and second in ambiguous.err
    unknown = cli("status", "--repo", repo, "--execution-id", "1999")
    assert unknown.code == 2 and "'1999': no such execution" in unknown.err
    nothing = cli("rollback", "--repo", repo, "--improvement-id", "nope")
    assert nothing.code == 2 and "'nope' has no executions" in nothing.err
    assert "Traceback" not in ambiguous.err + unknown.err + nothing.err


def test_latest_in_a_repository_without_executions(cli, make_repo):
    result = cli("status", "--repo", make_repo(), "--execution-id", "latest")
    assert result.code == 2 and "no executions yet" in result.err


# -- unreadable journal refs ---------------------------------------------------------------------
JOURNAL = "refs/tars-bot/executions/"


def hash_object(repo: Path, data: str) -> str:
    return subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo, input=data, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def corrupt_journals(repo: Path, good: str) -> dict[str, str]:
    """Two broken journal refs next to good ones: one at a blob of invalid JSON, one at a
    commit whose execution.json lacks a field. Their names -> targets."""
    blob = hash_object(repo, "{not json")
    record = json.loads(git(repo, "show", f"{JOURNAL}{good}:execution.json"))
    del record["state"]
    record["id"] = "20000101-000000-000-beef"
    entry = hash_object(repo, json.dumps(record))
    tree = subprocess.run(
        ["git", "mktree"], cwd=repo, input=f"100644 blob {entry}\texecution.json\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    commit = git(repo, "commit-tree", tree, "-m", "damaged record")
    broken = {
        f"{JOURNAL}20000101-000000-000-dead": blob,
        f"{JOURNAL}20000101-000000-000-beef": commit,
    }
    for name, target in broken.items():
        git(repo, "update-ref", name, target)
    git(repo, "update-ref", "-d", "refs/tars-bot/stats")  # history must build the index again
    return broken


def test_unreadable_journal_refs_are_skipped_with_a_warning(cli, two_executions):
    repo, first, second = two_executions
    broken = corrupt_journals(repo, first)
    history = cli("history", "--repo", repo, "--format", "json")
    assert history.code == 0, history.err
    assert [e["id"] for e in json.loads(history.out)] == [second, first]
    for name in broken:
        assert f"warning: skipped {name}" in history.err
    assert history.err.count("\n") == len(broken)  # one line each, said once
    stats = cli("stats", "--repo", repo, "--rebuild", "--format", "json")
    assert stats.code == 0, stats.err
    assert all(name in stats.err for name in broken)
    git(
        repo,
        "update-ref",
        f"{JOURNAL}30000101-000000-000-dead",
        broken[f"{JOURNAL}20000101-000000-000-dead"],
    )
    assert status_id(cli, repo, "--execution-id", "latest") == second  # the newest readable
    git(repo, "update-ref", "-d", f"{JOURNAL}30000101-000000-000-dead")
    status = cli("status", "--repo", repo, "--execution-id", "20000101-000000-000-beef")
    assert status.code == 2
    assert "execution.json is not a valid record (state: Field required)" in status.err
    recover = cli("recover", "--repo", repo)
    assert recover.code == 0, recover.err
    assert all(name in recover.err for name in broken)
    assert all(git(repo, "rev-parse", name) == target for name, target in broken.items())


def test_a_journal_with_an_invalid_plan_is_skipped_too(cli, two_executions):
    repo, first, _ = two_executions
    ref = JOURNAL + first
    record = git(repo, "rev-parse", f"{ref}:execution.json")
    plan = hash_object(repo, '{"format": "tars-bot.plan/1"}')
    tree = subprocess.run(
        ["git", "mktree"], cwd=repo, capture_output=True, text=True, check=True,
        input=f"100644 blob {record}\texecution.json\n100644 blob {plan}\tplan.json\n",
    ).stdout.strip()  # fmt: skip
    git(repo, "update-ref", ref, git(repo, "commit-tree", tree, "-p", ref, "-m", "damaged plan"))
    stats = cli("stats", "--repo", repo, "--rebuild", "--format", "json")
    assert stats.code == 0, stats.err
    assert stats.err.startswith(f"warning: skipped {ref}: plan.json is not a valid record (")
    assert json.loads(stats.out)["executions"] == 1
    shown = cli("status", "--repo", repo, "--execution-id", first)
    assert shown.code == 0, shown.err  # its record is readable: status shows it


def test_recover_sets_unreadable_journal_refs_aside(cli, two_executions):
    repo, first, _ = two_executions
    broken = corrupt_journals(repo, first)
    result = cli("recover", "--repo", repo, "--set-aside")
    assert result.code == 0, result.err
    for name, target in broken.items():
        aside = name.replace("refs/tars-bot/", "refs/tars-bot/broken/")
        assert f"set aside {name} as {aside}" in result.out
        assert git(repo, "rev-parse", aside) == target  # kept: the objects stay reachable
        assert git(repo, "for-each-ref", name) == ""
    again = cli("stats", "--repo", repo, "--rebuild")
    assert again.code == 0 and again.err == ""
    assert cli("recover", "--repo", repo, "--set-aside").out.strip() == "nothing to recover"


# -- misspelt options ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["status", "--fromat", "json"], "unknown option --fromat; did you mean --format?"),
        (["history", "--limt", "3"], "unknown option --limt; did you mean --limit?"),
        (
            ["plan", "--improvement-id", "x", "--outptu-file=p"],
            "unknown option --outptu-file; did you mean --output-file?",
        ),
        (["recover", "--set-asdie"], "unknown option --set-asdie; did you mean --set-aside?"),
    ],
)
def test_a_misspelt_option_is_named_with_its_likely_spelling(cli, make_repo, args, said):
    result = cli(*args, "--repo", make_repo())
    assert result.code == 2
    assert result.err == f"tars-bot: error: {said}\n"


def test_a_misspelt_option_with_format_json_is_a_json_error(cli, make_repo):
    result = cli("status", "--execution-id", "latest", "--format", "json", "--repo", make_repo(),
                 "--lgo", "2")  # fmt: skip
    assert result.code == 2
    problems = json.loads(result.out)["error"]["problems"]
    assert problems == ["unknown option --lgo; did you mean --log?"]


def test_abbreviations_argparse_accepts_still_work(cli, make_repo):
    result = cli("history", "--repo", make_repo(), "--lim", "1")
    assert result.code == 0, result.err


# -- uncommitted inputs --------------------------------------------------------------------------
def committed_repo(make_repo) -> Path:
    """Improvement `a` (edit alpha in a.txt) committed with its files and a config."""
    repo = make_repo({**FILES, "pyproject.toml": "[tool.tars-bot]\n"})
    add_improvement(repo, textwrap.dedent(EDIT_A), "a.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "improvement")
    return repo


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_text_only_in_the_working_tree_is_said_to_be_uncommitted(cli, make_repo):
    """The edit's search text is in a.txt, but only in the working tree: planning fails on
    HEAD, and now says why."""
    repo = committed_repo(make_repo)
    git(repo, "rm", "-q", "a.txt")
    git(repo, "commit", "-qm", "no a.txt yet")
    (repo / "a.txt").write_text("alpha\n")
    git(repo, "add", "a.txt")  # staged, not committed
    head = git(repo, "rev-parse", "HEAD")
    file = repo / ".tars" / "improvements" / "a.yaml"
    for args in (["plan", "--improvement-id", "a"], ["check", file]):
        result = cli(*args, "--repo", repo)
        assert result.code != 0
        assert warnings(result.err) == [
            f"warning: uncommitted changes to a.txt: judged against HEAD ({head[:10]}), not the "
            "working tree"
        ], args
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "diff", "--cached", "--name-only") == "a.txt"  # the index as it was


def test_uncommitted_config_and_noxfile_are_named(cli, make_repo):
    """Not the improvement file: it is read from the working tree, so its changes are seen."""
    repo = committed_repo(make_repo)
    with (repo / "pyproject.toml").open("a") as f:
        f.write('sandbox = "off"\n')
    (repo / "noxfile.py").write_text("import nox\n")
    improvement = repo / ".tars" / "improvements" / "a.yaml"
    improvement.write_text(improvement.read_text() + "description: more\n")
    result = cli("execute", "--repo", repo, "--improvement-id", "a", "--dry-run")
    assert result.code == 0, result.err
    [warning] = warnings(result.err)
    assert "warning: uncommitted changes to pyproject.toml, noxfile.py: judged against" in warning
    assert (repo / "noxfile.py").read_text() == "import nox\n"  # untouched


def test_a_clean_working_tree_gets_no_warning(cli, make_repo):
    repo = committed_repo(make_repo)
    (repo / "unrelated.txt").write_text("not an input\n")
    add_improvement(repo, textwrap.dedent(EDIT_B), "new.yaml")  # a new improvement, not committed
    for args in (
        ["plan", "--improvement-id", "new"],
        ["check", repo / ".tars/improvements/new.yaml"],
    ):
        result = cli(*args, "--repo", repo)
        assert result.code == 0, result.err
        assert warnings(result.err) == []


def test_the_warning_names_a_few_files_and_counts_the_rest(make_repo, capsys):
    from tars_bot import ExecutionSystem
    from tars_bot.planning import uncommitted

    names = [f"f{i}.txt" for i in range(8)]
    repo = make_repo(dict.fromkeys(names, "x\n"))
    steps = "".join(f"  - {{name: s{i}, delete: [{n}]}}\n" for i, n in enumerate(names))
    path = add_improvement(repo, f"title: many\nsteps:\n{steps}")
    for name in names:
        (repo / name).write_text("changed\n")
    system = ExecutionSystem(repo)
    found = uncommitted.warn(system.repo, "HEAD", system.load_improvement(path))
    assert found == names
    said = capsys.readouterr().err
    assert said.startswith("warning: uncommitted changes to f0.txt, f1.txt, f2.txt, f3.txt, ")
    assert "f4.txt and 3 more: judged against HEAD" in said and said.count("\n") == 1
