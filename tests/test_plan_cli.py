"""`tars-bot plan` on real repositories: what gets planned, and how bad input is reported."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import add_improvement, commit_files, git

SOURCE = {
    "pyproject.toml": """\
        [project]
        name = "pkg"

        [tool.tars-bot]
        components = { io = ["src/pkg/io.py", "src/pkg/enc.py"], docs = ["CHANGES.md"] }
        """,
    "src/pkg/__init__.py": "",
    "src/pkg/io.py": "def load(path):\n    return open(path).read()\n",
    "src/pkg/legacy.py": "OLD = True\n",
    "CHANGES.md": "# Changes\n",
}

ALL_ACTIONS = """\
    title: Open text files as UTF-8
    target_components: [io, docs]
    steps:
      - name: Add encoding
        edit: {path: src/pkg/io.py, search: "open(path)", replace: "open(path, encoding='utf-8')"}
      - name: Modernize
        run: ruff check --select UP --fix --exit-zero src
        scope: ["src/**"]
      - name: Changelog
        patch: |
          --- a/CHANGES.md
          +++ b/CHANGES.md
          @@ -1 +1,2 @@
           # Changes
          +- read files as UTF-8
      - {name: Add helper, write: {path: src/pkg/enc.py, content: "ENCODING = 'utf-8'\\n"}}
      - name: Drop legacy
        delete: [src/pkg/legacy.py]
        scope: ["src/pkg/legacy.py"]
    """


def plan_json(cli, repo: Path, *args: str) -> dict:
    result = cli("plan", "--repo", repo, "--format", "json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def plan_error(cli, repo: Path, improvement: str, *args: str) -> str:
    add_improvement(repo, textwrap.dedent(improvement))
    result = cli("plan", "--repo", repo, "--improvement-id", "imp", *args)
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    return result.err


def test_plans_every_action_kind(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(ALL_ACTIONS), "utf8-io.yaml")
    plan = plan_json(cli, repo, "--improvement-id", "utf8-io")

    assert plan["format"] == "tars-bot.plan/1"
    assert plan["improvement"]["id"] == "utf8-io"
    assert plan["branch"] == "tars-bot/utf8-io"
    assert plan["base"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert plan["base"]["tree"] == git(repo, "rev-parse", "HEAD^{tree}")
    assert plan["digest"].startswith("sha256:")
    steps = {s["name"]: s for s in plan["steps"]}
    assert [s["action"]["kind"] for s in plan["steps"]] == [
        "edit",
        "run",
        "patch",
        "write",
        "delete",
    ]
    assert [s["number"] for s in plan["steps"]] == [1, 2, 3, 4, 5]
    assert steps["Add encoding"]["files"] == ["src/pkg/io.py"]
    assert steps["Modernize"]["files"] is None
    assert steps["Modernize"]["scope"] == ["src/**"]
    assert steps["Changelog"]["files"] == ["CHANGES.md"]
    assert steps["Add helper"]["files"] == ["src/pkg/enc.py"]
    assert steps["Drop legacy"]["files"] == ["src/pkg/legacy.py"]
    assert steps["Add encoding"]["scope"] == ["src/pkg/io.py", "src/pkg/enc.py", "CHANGES.md"]
    assert steps["Add encoding"]["limits"] == {
        "step_timeout": 600,
        "memory_mb": 4096,
        "max_changed_lines": 5000,
        "max_changed_bytes": 50_000_000,
        "max_file_mb": 10,
    }
    # the run step's scope covers the edited file, so the edit after it is ordered and reported
    assert steps["Add helper"]["depends_on"] == [2]
    assert any("Modernize" in w and "Add helper" in w for w in plan["warnings"])


def test_plan_changes_nothing_in_the_repository(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(ALL_ACTIONS))
    git(repo, "add", "-A")
    (repo / "src/pkg/io.py").write_text("# uncommitted\n")
    before = (
        git(repo, "status", "--porcelain"),
        git(repo, "for-each-ref"),
        git(repo, "stash", "list"),
    )
    plan_json(cli, repo, "--improvement-id", "imp")
    after = (
        git(repo, "status", "--porcelain"),
        git(repo, "for-each-ref"),
        git(repo, "stash", "list"),
    )
    assert after == before
    assert (repo / "src/pkg/io.py").read_text() == "# uncommitted\n"


def test_text_summary_and_output_file(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(ALL_ACTIONS))
    out = tmp_path / "plan.json"
    result = cli("plan", "--repo", repo, "--improvement-id", "imp", "--output-file", out)
    assert result.code == 0, result.err
    assert "Add encoding" in result.out and "tars-bot/imp" in result.out
    assert "warning:" in result.out
    assert json.loads(out.read_text())["steps"][0]["name"] == "Add encoding"
    verbose = cli("plan", "--repo", repo, "--improvement-id", "imp", "--verbose")
    assert "step 2 scope src/**; checks none; timeout 600 s, memory 4096 MB" in verbose.out
    assert "digest sha256:" in verbose.out


def test_digest_covers_the_plan(make_repo):
    from tars_bot import ExecutionSystem, Improvement

    repo = make_repo(SOURCE)
    improvement = Improvement.model_validate(
        {"id": "x", "title": "t", "steps": [{"name": "a", "write": {"path": "a", "content": "1"}}]}
    )
    plan = ExecutionSystem(repo).plan(improvement)
    assert plan.is_sealed
    tampered = plan.model_copy(update={"branch": "tars-bot/other"})
    assert not tampered.is_sealed


def test_orders_by_depends_on_names_and_numbers(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: reorder
            steps:
              - {name: C, write: {path: c.txt, content: c}, depends_on: [B]}
              - {name: B, write: {path: b.txt, content: b}, depends_on: [3]}
              - {name: A, write: {path: a.txt, content: a}}
            """),
    )
    plan = plan_json(cli, repo, "--improvement-id", "imp")
    assert [s["name"] for s in plan["steps"]] == ["A", "B", "C"]
    assert [s["depends_on"] for s in plan["steps"]] == [[], [1], [2]]
    assert plan["warnings"] == []


def test_orders_overlapping_steps_by_file_order_with_a_warning(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: overlap
            steps:
              - {name: first, edit: {path: src/pkg/io.py, search: "open(path)", replace: "open(p)"}}
              - {name: unrelated, write: {path: other.txt, content: x}}
              - {name: second, edit: {path: src/pkg/io.py, search: "open(p)", replace: "opn(p)"}}
            """),
    )
    plan = plan_json(cli, repo, "--improvement-id", "imp")
    assert [s["name"] for s in plan["steps"]] == ["first", "unrelated", "second"]
    assert plan["steps"][2]["depends_on"] == [1]
    assert plan["warnings"] == [
        'step 1 "first" and step 3 "second" both touch src/pkg/io.py; they run in file order'
    ]


def test_explicit_order_wins_over_file_order(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: explicit
            steps:
              - {name: late, edit: {path: CHANGES.md, search: "# Log", replace: "# Changelog"},
                 depends_on: [early]}
              - {name: early, edit: {path: CHANGES.md, search: "# Changes", replace: "# Log"}}
            """),
    )
    plan = plan_json(cli, repo, "--improvement-id", "imp")
    assert [s["name"] for s in plan["steps"]] == ["early", "late"]
    assert plan["warnings"] == []


def test_base_ref_pins_an_older_commit(cli, make_repo):
    repo = make_repo(SOURCE)
    first = git(repo, "rev-parse", "HEAD")
    commit_files(repo, {"src/pkg/io.py": "def load(path):\n    return path\n"})
    add_improvement(
        repo,
        "title: t\nsteps:\n  - {name: e, edit: {path: src/pkg/io.py, search: open(path), replace: x}}\n",
    )
    assert cli("plan", "--repo", repo, "--improvement-id", "imp").code == 2
    plan = plan_json(cli, repo, "--improvement-id", "imp", "--base", "HEAD~1")
    assert plan["base"] == {
        "ref": "HEAD~1",
        "commit": first,
        "tree": git(repo, "rev-parse", "HEAD~1^{tree}"),
    }


def test_later_steps_see_earlier_steps_applied(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: chain
            steps:
              - {name: create, write: {path: src/pkg/new.py, content: "X = 1\\n"}}
              - {name: change, edit: {path: src/pkg/new.py, search: "X = 1", replace: "X = 2"}}
              - name: patch it
                patch: |
                  --- src/pkg/new.py
                  +++ src/pkg/new.py
                  @@ -1 +1 @@
                  -X = 2
                  +X = 3
              - {name: remove, delete: src/pkg/new.py}
            """),
    )
    plan = plan_json(cli, repo, "--improvement-id", "imp")
    assert [s["files"] for s in plan["steps"]] == [["src/pkg/new.py"]] * 4


@pytest.mark.parametrize("suffix", ["toml", "json"])
def test_loads_toml_and_json(cli, make_repo, suffix):
    repo = make_repo(SOURCE)
    documents = {
        "toml": 'title = "t"\n[[steps]]\nname = "w"\nwrite = {path = "a.txt", content = "a"}\n',
        "json": '{"title": "t", "steps": [{"name": "w", "write": {"path": "a.txt", "content": "a"}}]}',
    }
    add_improvement(repo, documents[suffix], f"fmt.{suffix}")
    plan = plan_json(cli, repo, "--improvement-id", "fmt")
    assert plan["steps"][0]["files"] == ["a.txt"]


def test_nox_sessions_are_verified(cli, make_repo):
    repo = make_repo(
        {
            **SOURCE,
            "noxfile.py": """\
                import nox

                @nox.session(venv_backend="none", tags=["quick"])
                def lint(session):
                    session.run("true")

                @nox.session(venv_backend="none")
                def tests(session):
                    session.run("true")
                """,
        }
    )
    good = "title: t\nvalidation: {per_step: [lint], final: [tests, 'tag:quick']}\n"
    steps = "steps: [{name: w, write: {path: a.txt, content: a}}]\n"
    add_improvement(repo, good + steps)
    plan = plan_json(cli, repo, "--improvement-id", "imp")
    assert plan["steps"][0]["checks"] == ["lint"]
    assert plan["validation"]["final"] == ["tests", "tag:quick"]

    err = plan_error(
        cli, repo, "title: t\nvalidation: {final: [tests, docs, 'tag:slow']}\n" + steps
    )
    assert (
        "validation.final[2]: no nox session named 'docs' in noxfile.py (sessions: lint, tests)"
        in err
    )
    assert "validation.final[3]: no nox session is tagged 'slow'" in err


def test_validation_defaults_come_from_config_and_need_a_noxfile(cli, make_repo):
    files = dict(SOURCE)
    files["pyproject.toml"] += 'validation = { final = ["tests"] }\n'
    repo = make_repo(files)
    err = plan_error(cli, repo, "title: t\nsteps: [{name: w, write: {path: a.txt, content: a}}]\n")
    assert "[tool.tars-bot].validation.final[1]: the base commit has no noxfile.py" in err


def test_generator_writes_missing_steps(cli, make_repo, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "secret-token")
    monkeypatch.setenv("AGENT_API_KEY", "agent-key")
    files = dict(SOURCE)
    files["gen.py"] = """\
        import json, os
        improvement = json.load(open(os.environ["TARS_IMPROVEMENT_FILE"]))
        seen = [os.environ.get(name, "-") for name in ("GITHUB_TOKEN", "AGENT_API_KEY")]
        print(json.dumps([{"name": "generated", "write": {"path": "g.txt", "content": improvement["title"] + " " + " ".join(seen)}}]))
        """
    files["pyproject.toml"] += 'generator = "python gen.py"\npass_env = ["AGENT_API_KEY"]\n'
    repo = make_repo(files)
    add_improvement(repo, "title: from the generator\n")
    plan = plan_json(cli, repo, "--improvement-id", "imp")
    assert plan["steps"][0]["name"] == "generated"
    # secrets reach a generator only when named in pass_env
    assert plan["steps"][0]["action"]["content"] == "from the generator - agent-key"


def test_repo_config_errors_name_the_setting(cli, make_repo):
    files = dict(SOURCE)
    files["pyproject.toml"] += "limits = { memory_mb = -1 }\n"
    repo = make_repo(files)
    err = plan_error(cli, repo, "title: t\nsteps: [{name: w, write: {path: a, content: a}}]\n")
    assert (
        "pyproject.toml at HEAD: [tool.tars-bot].limits.memory_mb: Input should be greater than 0"
        in err
    )


BAD_INPUT = [
    (
        "steps:\n  - {name: a, write: {path: x, content: y}, depends_on: [b]}\n"
        "  - {name: b, write: {path: y, content: y}, depends_on: [a]}\n",
        'steps[1].depends_on: dependency cycle: "a" needs "b" needs "a"',
    ),
    (
        "steps: [{name: e, edit: {path: src/pkg/io.py, search: nothing-like-this, replace: x}}]",
        "steps[1].edit.search: text not found in src/pkg/io.py",
    ),
    (
        "steps: [{name: e, edit: {path: src/pkg/io.py, search: path, replace: x}}]",
        "steps[1].edit.search: text occurs 2 times (must be once) in src/pkg/io.py",
    ),
    (
        "steps: [{name: e, edit: {path: src/pkg/nope.py, search: a, replace: b}}]",
        "steps[1].edit.path: src/pkg/nope.py does not exist",
    ),
    (
        "steps:\n  - name: p\n    patch: |\n      --- a/CHANGES.md\n      +++ b/CHANGES.md\n"
        "      @@ -1 +1 @@\n      -# Something else\n      +# Log\n",
        "steps[1].patch: hunk 1 does not apply to CHANGES.md (near line 1)",
    ),
    ("steps:\n  - name: p\n    patch: not a diff at all\n", "steps[1].patch: not a valid diff"),
    (
        "steps: [{name: w, write: {path: ../outside.py, content: x}}]",
        "steps[1].write.path: '../outside.py' leaves the repository",
    ),
    (
        "steps: [{name: w, write: {path: /etc/passwd, content: x}}]",
        "steps[1].write.path: '/etc/passwd' is absolute",
    ),
    (
        "steps: [{name: w, write: {path: .git/hooks/pre-commit, content: x}}]",
        "steps[1].write.path: '.git/hooks/pre-commit' is inside .git",
    ),
    (
        "steps: [{name: d, delete: [src/pkg/missing.py]}]",
        "steps[1].delete[1]: src/pkg/missing.py does not exist",
    ),
    (
        "steps: [{name: w, write: {path: x, content: y}, colour: blue}]",
        "steps[1].colour: unknown key",
    ),
    (
        "titel: t\nsteps: [{name: w, write: {path: x, content: y}}]",
        "titel: unknown key (did you mean 'title'?)",
    ),
    (
        "steps: [{name: w, write: {path: x, content: y}, timeout: soon}]",
        "steps[1].timeout: Input should be a valid integer",
    ),
    (
        "steps: [{name: w, write: {path: x, content: [1, 2]}}]",
        "steps[1].write.content: Input should be a valid string",
    ),
    (
        "steps: [{name: w}]",
        "steps[1]: a step needs exactly one action (run, patch, edit, write or delete); found none",
    ),
    (
        "steps: [{name: w, run: ls, delete: [x]}]",
        "steps[1]: a step needs exactly one action (run, patch, edit, write or delete); found run and delete",
    ),
    (
        "steps: [{name: a, run: ls}, {name: a, run: ls}]",
        "steps[2].name: duplicate step name (also steps[1])",
    ),
    ("steps: [{name: a, run: ls, depends_on: [zz]}]", "steps[1].depends_on[1]: no step named 'zz'"),
    ("steps: [{name: a, run: ls, depends_on: [7]}]", "steps[1].depends_on[1]: no step number 7"),
    ("steps: []", "steps: the improvement has no steps and no generator is configured"),
    (
        "target_components: [nosuch]\nsteps: [{name: a, run: ls}]",
        "target_components[1]: 'nosuch' is neither a component",
    ),
    (
        "steps: [{name: w, write: {path: docs/x.md, content: y}, scope: ['src/**']}]",
        "steps[1].write: docs/x.md is outside the step's scope (src/**)",
    ),
    (
        "steps: [{name: w, write: {path: .github/workflows/ci.yml, content: y}}]",
        "steps[1].write: .github/workflows/ci.yml is protected",
    ),
    (
        "on_failure: retry\nsteps: [{name: a, run: ls}]",
        "on_failure: Input should be 'rollback' or 'drop-step'",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_INPUT, ids=[m[:40] for _, m in BAD_INPUT])
def test_bad_input_exits_2_naming_the_field(cli, make_repo, body, message):
    repo = make_repo(SOURCE)
    text = body if body.startswith("titel") else "title: t\n" + body
    err = plan_error(cli, repo, text)
    assert f"error: .tars/improvements/imp.yaml: {message}" in err


def test_yaml_syntax_error_names_line_and_column(cli, make_repo):
    repo = make_repo(SOURCE)
    err = plan_error(cli, repo, "title: t\nsteps:\n  - name: [unclosed\n")
    assert "error: .tars/improvements/imp.yaml: line 4, column 1: YAML syntax error" in err


def test_duplicate_yaml_keys_are_refused(cli, make_repo):
    repo = make_repo(SOURCE)
    err = plan_error(cli, repo, "title: t\ntitle: u\nsteps: [{name: a, run: ls}]\n")
    assert "line 2, column 1: YAML syntax error: duplicate key 'title'" in err


def test_every_problem_is_reported(cli, make_repo):
    repo = make_repo(SOURCE)
    err = plan_error(
        cli,
        repo,
        "title: t\nsteps:\n  - {name: a, edit: {path: src/pkg/io.py, search: zz, replace: y}}\n"
        "  - {name: b, delete: [nope.txt]}\n",
    )
    assert "steps[1].edit.search" in err and "steps[2].delete[1]" in err


def test_writes_through_symlinks_are_refused(cli, make_repo):
    repo = make_repo(SOURCE)
    (repo / "escape").symlink_to("/tmp")
    commit_files(repo, {})
    err = plan_error(
        cli, repo, "title: t\nsteps: [{name: w, write: {path: escape/x.py, content: x}}]\n"
    )
    assert "steps[1].write.path: escape/x.py: escape is a symbolic link" in err


def test_unknown_improvement_id_lists_known_ones(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, "title: t\nsteps: [{name: a, run: ls}]\n", "known.yaml")
    result = cli("plan", "--repo", repo, "--improvement-id", "unknown")
    assert result.code == 2
    assert (
        "improvement 'unknown': no unknown.yaml in" in result.err and "known: known" in result.err
    )


def test_missing_base_and_missing_repository(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    add_improvement(repo, "title: t\nsteps: [{name: a, run: ls}]\n")
    result = cli("plan", "--repo", repo, "--improvement-id", "imp", "--base", "no-such-ref")
    assert (result.code, result.err) == (2, "error: base: no commit named 'no-such-ref'\n")
    (tmp_path / "plain").mkdir()
    result = cli("plan", "--repo", tmp_path / "plain", "--improvement-id", "imp")
    assert result.code == 2 and "not inside a git repository" in result.err


def test_usage_errors_exit_2(cli):
    result = cli("plan", "--improvement-id", "a", "--improvement-file", "b")
    assert result.code == 2 and "not allowed with argument" in result.err
