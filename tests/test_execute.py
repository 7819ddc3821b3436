"""`tars-bot execute`, `status`, `history` on real repositories."""

from __future__ import annotations

import json
import signal
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.helpers import (
    add_improvement,
    commit_files,
    git,
    leftover_worktrees,
    run_tars,
    start_tars,
    wait_until,
    write_files,
)

SOURCE = {
    "pyproject.toml": """\
        [project]
        name = "pkg"

        [tool.tars-bot]
        components = { core = ["src/**"], docs = ["CHANGES.md"] }
        """,
    "src/pkg/__init__.py": "",
    "src/pkg/io.py": "def load(path):\n    return open(path).read()\n",
    "CHANGES.md": "# Changes\n",
}

THREE_STEPS = """\
    title: UTF-8 everywhere
    target_components: [core, docs]
    steps:
      - name: Generate module
        run: printf 'ENCODING = "utf-8"\\n' > src/pkg/enc.py
      - name: Changelog
        patch: |
          --- a/CHANGES.md
          +++ b/CHANGES.md
          @@ -1 +1,2 @@
           # Changes
          +- UTF-8 everywhere
      - name: Add encoding
        edit: {path: src/pkg/io.py, search: "open(path)", replace: "open(path, encoding='utf-8')"}
    """


def snapshot(repo: Path) -> tuple[str, ...]:
    """Everything of the user's that tars-bot must leave alone."""
    files = sorted(
        (str(p.relative_to(repo)), p.read_bytes())
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    )
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        git(repo, "status", "--porcelain"),
        git(repo, "diff", "--cached"),
        git(repo, "stash", "list"),
        git(repo, "for-each-ref", "refs/heads", "refs/tags"),
        repr(files),
    )


def execute(cli, repo: Path, *args: str):
    return cli("execute", "--repo", repo, "--improvement-id", "imp", *args)


def only_execution(cli, repo: Path) -> dict:
    result = cli("history", "--repo", repo, "--format", "json")
    [execution] = json.loads(result.out)
    return execution


def test_three_steps_make_three_commits_with_trailers(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(THREE_STEPS))
    base = git(repo, "rev-parse", "HEAD")
    result = execute(cli, repo)
    assert result.code == 0, result.err + result.out
    assert "succeeded on branch tars-bot/imp" in result.out

    commits = git(repo, "rev-list", "--reverse", f"{base}..tars-bot/imp").split()
    assert len(commits) == 3
    execution = only_execution(cli, repo)
    for number, commit in enumerate(commits, 1):
        trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", commit)
        assert (
            f"Tars-Improvement: imp\nTars-Execution: {execution['id']}\nTars-Step: {number}/3"
            in trailers
        )
    assert git(repo, "show", "tars-bot/imp:src/pkg/enc.py") == 'ENCODING = "utf-8"'
    assert "- UTF-8 everywhere" in git(repo, "show", "tars-bot/imp:CHANGES.md")
    assert "encoding='utf-8'" in git(repo, "show", "tars-bot/imp:src/pkg/io.py")

    status = cli("status", "--repo", repo, "--execution-id", execution["id"], "--format", "json")
    data = json.loads(status.out)
    assert data["state"] == "succeeded"
    assert data["branch"] == "tars-bot/imp"
    assert data["base_commit"] == base
    assert data["head_commit"] == commits[-1]
    assert [s["commit"] for s in data["steps"]] == commits
    assert [s["state"] for s in data["steps"]] == ["applied"] * 3
    assert data["steps"][0]["changed_files"] == ["src/pkg/enc.py"]
    assert data["steps"][0]["peak_memory_mb"] > 0
    # the journal keeps every step commit reachable, and nothing is left behind
    assert leftover_worktrees(repo) == []
    assert git(repo, "for-each-ref", "refs/tars-bot/locks") == ""


def test_user_checkout_is_untouched(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(THREE_STEPS))
    write_files(repo, {"src/pkg/io.py": "# my unstaged work\n", "staged.txt": "staged\n"})
    git(repo, "add", "staged.txt")
    git(repo, "branch", "feature")
    before = snapshot(repo)
    assert execute(cli, repo).code == 0
    assert execute(cli, repo, "--dry-run").code == 0
    after = snapshot(repo)
    assert after[:5] == before[:5] and after[6] == before[6]
    assert (
        after[5]
        == before[5] + f"\n{git(repo, 'rev-parse', 'tars-bot/imp')} commit\trefs/heads/tars-bot/imp"
    )


FAILURES = {
    "outside scope": (
        "steps: [{name: s, run: 'echo x > CHANGES.md', scope: ['src/**']}]",
        'step 1 "s": changed CHANGES.md, outside its scope (src/**)',
    ),
    "timeout": (
        "steps: [{name: s, run: 'sleep 30', timeout: 1}]",
        'step 1 "s": timed out after 1s (limits.step_timeout)',
    ),
    "memory": (
        "limits: {memory_mb: 300}\n"
        "steps: [{name: s, run: 'python3 -c \"x = bytearray(2 * 1024 ** 3)\"'}]",
        'step 1 "s": command exited with code 1 (memory limit 300 MB reached)',
    ),
    "writes into .git": (
        "steps: [{name: s, run: 'echo gitdir: /elsewhere > .git'}]",
        'step 1 "s": command exited with code 2 (it tried to write outside its worktree, which the sandbox refuses)',
    ),
    "git hooks": (  # the step's git dir is its own, and has no hooks to plant one in
        "steps: [{name: s, run: 'echo evil > \"$(git rev-parse --git-common-dir)/hooks/pre-commit\"'}]",
        'step 1 "s": command exited with code 2',
    ),
    "symlink out": (
        "steps: [{name: s, run: 'ln -s /etc/passwd src/pw'}]",
        'step 1 "s": src/pw is a symbolic link leaving the worktree (to /etc/passwd)',
    ),
    "protected": (
        "steps: [{name: s, run: 'mkdir -p .github/workflows && echo x > .github/workflows/ci.yml'}]",
        'step 1 "s": changed .github/workflows/ci.yml, a protected path',
    ),
    "command fails": (
        "steps: [{name: ok, run: 'echo a > src/a.py'}, {name: s, run: 'exit 3'}]",
        'step 2 "s": command exited with code 3',
    ),
    "too many lines": (
        "limits: {max_changed_lines: 5}\nsteps: [{name: s, run: 'seq 100 > src/n.txt'}]",
        'step 1 "s": changed 100 lines, over the limit of 5',
    ),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failing_step_rolls_back_and_names_the_reason(cli, make_repo, case):
    body, reason = FAILURES[case]
    repo = make_repo(SOURCE)
    add_improvement(repo, f"title: t\n{body}\n")
    before = snapshot(repo)
    result = execute(cli, repo)
    assert result.code == 1, result.err + result.out
    execution = only_execution(cli, repo)
    assert execution["state"] == "rolled_back"
    assert execution["failure_reason"] == reason
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    assert leftover_worktrees(repo) == []
    assert snapshot(repo) == before


def test_secrets_do_not_reach_steps(cli, make_repo, monkeypatch):
    for name in ("GITHUB_TOKEN", "NPM_TOKEN", "AWS_SECRET", "SIGNING_KEY", "MY_SETTING"):
        monkeypatch.setenv(name, f"value-of-{name}")
    files = dict(SOURCE)
    files["pyproject.toml"] += 'pass_env = ["MY_SETTING"]\n'
    repo = make_repo(files)
    add_improvement(repo, "title: t\nsteps: [{name: env, run: 'env | sort > src/env.txt'}]\n")
    assert execute(cli, repo).code == 0
    env = git(repo, "show", "tars-bot/imp:src/env.txt")
    assert "value-of-" in env  # the allowlisted setting came through
    assert "MY_SETTING=value-of-MY_SETTING" in env
    for secret in ("GITHUB_TOKEN", "NPM_TOKEN", "AWS_SECRET", "SIGNING_KEY"):
        assert secret not in env
    assert f"HOME={Path.home()}" not in env
    assert "TARS_STEP=1" in env and "TARS_IMPROVEMENT_FILE=" in env and "TARS_WORKSPACE=" in env


def test_steps_cannot_reach_the_network(cli, make_repo):
    repo = make_repo(SOURCE)
    probe = (
        "python3 -c \"import socket\ntry: socket.create_connection(('192.0.2.1', 9), 1)\n"
        'except OSError as e: print(e.errno)" > src/net.txt'
    )
    add_improvement(repo, f"title: t\nsteps: [{{name: net, run: {json.dumps(probe)}}}]\n")
    assert execute(cli, repo).code == 0
    step = only_execution(cli, repo)["steps"][0]
    if step["network"] == "isolated":
        assert git(repo, "show", "tars-bot/imp:src/net.txt") == "101"  # ENETUNREACH
    else:
        assert step["network"] == "unavailable"


def test_empty_change_is_a_skipped_step(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        "title: t\nsteps: [{name: noop, run: 'true'}, {name: w, write: {path: src/x, content: x}}]\n",
    )
    base = git(repo, "rev-parse", "HEAD")
    assert execute(cli, repo).code == 0
    steps = only_execution(cli, repo)["steps"]
    assert [s["state"] for s in steps] == ["skipped", "applied"]
    assert len(git(repo, "rev-list", f"{base}..tars-bot/imp").split()) == 1


def test_dry_run_prints_the_diff_and_leaves_no_branch(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(THREE_STEPS))
    result = execute(cli, repo, "--dry-run")
    assert result.code == 0, result.err
    assert "+- UTF-8 everywhere" in result.out and "+ENCODING" in result.out
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    assert only_execution(cli, repo)["dry_run"] is True


def test_plan_file_with_wrong_digest_or_moved_base_is_refused(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(THREE_STEPS))
    plan_file = tmp_path / "plan.json"
    assert (
        cli("plan", "--repo", repo, "--improvement-id", "imp", "--output-file", plan_file).code == 0
    )

    plan = json.loads(plan_file.read_text())
    plan["branch"] = "main"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(plan))
    result = cli("execute", "--repo", repo, "--plan-file", tampered)
    assert result.code == 2 and "digest does not match" in result.err

    commit_files(repo, {"other.txt": "moved\n"})
    result = cli("execute", "--repo", repo, "--plan-file", plan_file)
    assert result.code == 2 and "base HEAD moved from" in result.err
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    rebased = cli("execute", "--repo", repo, "--plan-file", plan_file, "--rebase", "--dry-run")
    assert rebased.code == 0, rebased.err
    assert "+- UTF-8 everywhere" in rebased.out

    plan_file.write_text("{not json")
    result = cli("execute", "--repo", repo, "--plan-file", plan_file)
    assert result.code == 2 and "plan.json" in result.err


def test_existing_branch_is_not_overwritten(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(THREE_STEPS))
    git(repo, "branch", "tars-bot/imp")
    result = execute(cli, repo)
    assert result.code == 2 and "branch tars-bot/imp already exists" in result.err
    assert git(repo, "rev-parse", "tars-bot/imp") == git(repo, "rev-parse", "HEAD")


def test_history_lists_newest_first(cli, make_repo):
    repo = make_repo(SOURCE)
    for name in ("a", "b", "c"):
        add_improvement(
            repo,
            f"title: {name}\nsteps: [{{name: w, write: {{path: src/{name}, content: x}}}}]\n",
            f"{name}.yaml",
        )
        assert cli("execute", "--repo", repo, "--improvement-id", name).code == 0
    result = cli("history", "--repo", repo, "--format", "json")
    assert [e["improvement"] for e in json.loads(result.out)] == ["c", "b", "a"]
    limited = cli("history", "--repo", repo, "--format", "json", "--limit", "1")
    assert [e["improvement"] for e in json.loads(limited.out)] == ["c"]
    text = cli("history", "--repo", repo)
    assert text.out.index(" c ") < text.out.index(" a ")


def test_status_of_unknown_execution(cli, make_repo):
    repo = make_repo(SOURCE)
    result = cli("status", "--repo", repo, "--execution-id", "nope")
    assert result.code == 2 and "execution 'nope': no such execution" in result.err


def test_two_executions_of_one_improvement_cannot_both_run(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        "title: t\nsteps: [{name: wait, run: 'touch src/running; while [ ! -e src/release ]; do sleep 0.05; done'}]\n",
    )
    first = start_tars(repo, "execute", "--improvement-id", "imp")
    # the step sees only its worktree: it is told to go on through a file there
    worktrees = repo / ".git" / "tars-bot" / "worktrees"
    try:
        wait_until(lambda: list(worktrees.glob("*/src/running")), first)
        second = execute(cli, repo)
        running = git(
            repo, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/tars-bot/executions"
        )
        assert second.code == 2
        assert f"improvement 'imp' is already being executed by execution {running}" in second.err
    finally:
        for started in worktrees.glob("*/src/running"):
            started.with_name("release").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0
    assert git(repo, "for-each-ref", "refs/tars-bot/locks") == ""


def test_executing_again_supersedes_the_previous_result(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, "title: t\nsteps: [{name: w, write: {path: src/v.txt, content: one}}]\n")
    assert execute(cli, repo).code == 0
    first = only_execution(cli, repo)
    add_improvement(repo, "title: t\nsteps: [{name: w, write: {path: src/v.txt, content: two}}]\n")
    assert execute(cli, repo).code == 0
    second, previous = json.loads(cli("history", "--repo", repo, "--format", "json").out)
    assert previous["id"] == first["id"]
    assert previous["state"] == "rolled_back"
    assert previous["failure_reason"] == f"superseded by execution {second['id']}"
    assert git(repo, "show", "tars-bot/imp:src/v.txt") == "two"
    journal = git(repo, "rev-parse", f"refs/tars-bot/executions/{first['id']}")
    assert git(repo, "merge-base", "--is-ancestor", first["head_commit"], journal) == ""


def test_run_step_sees_the_steps_before_it(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        textwrap.dedent("""\
            title: mixed
            steps:
              - {name: write, write: {path: src/a.txt, content: "from step 1\\n"}}
              - {name: copy, run: "cp src/a.txt src/b.txt && chmod +x src/b.txt"}
              - {name: edit, edit: {path: src/b.txt, search: "step 1", replace: "step 3"}}
              - {name: drop, delete: [src/a.txt]}
            """),
    )
    for args in ((), ("--dry-run",)):
        result = execute(cli, repo, *args)
        assert result.code == 0, result.err + result.out
    assert git(repo, "show", "tars-bot/imp:src/b.txt") == "from step 3"
    assert git(repo, "ls-tree", "tars-bot/imp", "src/b.txt").startswith("100755")
    assert "src/a.txt" not in git(repo, "ls-tree", "-r", "--name-only", "tars-bot/imp")


def test_step_output_is_streamed_logged_and_capped(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(
        repo,
        "title: t\nsteps:\n  - {name: loud, run: 'echo first-line; seq 1 200000; echo last-line'}\n"
        "  - {name: fail, run: 'echo why-it-failed; exit 4'}\n",
    )
    result = execute(cli, repo, "--verbose")
    assert result.code == 1
    assert "first-line" in result.out and "199999" in result.out  # streamed as it ran
    execution = only_execution(cli, repo)
    log = cli("status", "--repo", repo, "--execution-id", execution["id"], "--log", "1").out
    assert log.startswith("first-line\n") and log.rstrip().endswith("last-line")
    assert "bytes of output omitted" in log and len(log) < 200_000

    quiet = execute(cli, repo)
    assert "last lines of step 2's output:" in quiet.out and "why-it-failed" in quiet.out


def test_status_text(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, textwrap.dedent(THREE_STEPS))
    assert execute(cli, repo).code == 0
    execution = only_execution(cli, repo)
    result = cli("status", "--repo", repo, "--execution-id", execution["id"])
    assert result.code == 0
    assert f"Execution {execution['id']} of imp: succeeded" in result.out
    assert "Generate module" in result.out and "tars-bot/imp" in result.out


def test_a_pooled_worktree_leaks_nothing_between_executions(cli, make_repo):
    repo = make_repo({**SOURCE, ".gitignore": "*.log\n"})
    add_improvement(
        repo,
        "title: a\nsteps: [{name: dirty, run: 'echo $TARS_WORKSPACE > src/ws-a.txt && "
        "echo leak > src/ignored.log && mkdir -p build && echo x > build/out.log && "
        "echo changed >> src/pkg/io.py && chmod +x src/pkg/io.py'}]\n",
        "a.yaml",
    )
    add_improvement(
        repo, "title: f\nsteps: [{name: fail, run: 'echo junk > src/junk.txt; exit 1'}]\n", "f.yaml"
    )
    add_improvement(
        repo,
        "title: b\nsteps: [{name: look, run: 'echo $TARS_WORKSPACE > src/ws-b.txt && "
        "find . -path ./.git -prune -o -print | sort > src/listing.txt && "
        "stat -c %a src/pkg/io.py > src/mode.txt'}]\n",
        "b.yaml",
    )
    assert cli("execute", "--repo", repo, "--improvement-id", "a").code == 0
    assert cli("execute", "--repo", repo, "--improvement-id", "f").code == 1
    assert cli("execute", "--repo", repo, "--improvement-id", "b").code == 0

    assert git(repo, "show", "tars-bot/b:src/ws-b.txt") == git(
        repo, "show", "tars-bot/a:src/ws-a.txt"
    )
    listing = git(repo, "show", "tars-bot/b:src/listing.txt").splitlines()
    for leaked in ("./src/ignored.log", "./build", "./src/junk.txt", "./src/ws-a.txt"):
        assert leaked not in listing
    assert git(repo, "show", "tars-bot/b:src/pkg/io.py") == git(repo, "show", "main:src/pkg/io.py")
    assert git(repo, "show", "tars-bot/b:src/mode.txt") == "644"
    assert leftover_worktrees(repo) == []
    git(repo, "branch", "-D", "tars-bot/a")  # the pool does not keep branches checked out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_rolls_back_and_stops_the_step(make_repo, sig, code):
    repo = make_repo(SOURCE)
    marker = uuid.uuid4().hex
    add_improvement(
        repo,
        f"title: t\nsteps:\n  - {{name: w, write: {{path: src/w.txt, content: w}}}}\n  - {{name: slow, run: 'touch src/started; python3 -c \"import time; time.sleep(60)\" {marker}'}}\n",
    )
    proc = start_tars(repo, "execute", "--improvement-id", "imp")
    wait_until(lambda: list((repo / ".git" / "tars-bot" / "worktrees").glob("*/src/started")), proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, out + err
    [execution] = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    assert execution["state"] == "interrupted"
    assert git(repo, "branch", "--list", "tars-bot/*") == ""
    assert git(repo, "for-each-ref", "refs/tars-bot/locks", "refs/tars-bot/pool") == ""
    # the step's process is gone too
    commands = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if _readable(p)]
    assert not [c for c in commands if marker.encode() in c and b"time.sleep" in c]


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True


def test_the_users_git_hooks_do_not_run_in_tars_bots_worktrees(cli, make_repo, tmp_path):
    repo = make_repo(SOURCE)
    marker = tmp_path / "hook-ran"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    add_improvement(repo, "title: t\nsteps: [{name: r, run: 'echo x > src/r.txt'}]\n")
    assert execute(cli, repo).code == 0
    assert not marker.exists()


def test_network_can_be_allowed(cli, make_repo):
    files = dict(SOURCE)
    files["pyproject.toml"] += "allow_network = true\n"
    repo = make_repo(files)
    add_improvement(repo, "title: t\nsteps: [{name: r, run: 'echo x > src/r.txt'}]\n")
    assert execute(cli, repo).code == 0
    assert only_execution(cli, repo)["steps"][0]["network"] == "allowed"


def test_the_log_of_a_silent_step_is_empty_not_an_error(cli, make_repo):
    repo = make_repo(SOURCE)
    add_improvement(repo, "title: t\nsteps: [{name: quiet, run: 'echo x > src/q.txt'}]\n")
    assert execute(cli, repo).code == 0
    execution = only_execution(cli, repo)
    quiet = cli("status", "--repo", repo, "--execution-id", execution["id"], "--log", "1")
    assert quiet.code == 0 and quiet.out == "" and "printed nothing" in quiet.err
    missing = cli("status", "--repo", repo, "--execution-id", execution["id"], "--log", "7")
    assert missing.code == 2 and f"execution {execution['id']} has no step 7" in missing.err
