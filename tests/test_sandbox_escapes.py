"""A hostile improvement, tried the way an attacker would: every escape found is a test here.

Each test asserts what must hold whatever the step did: nothing outside its worktree changed (the
user's checkout, HOME, /tmp), no ref or git file moved, no secret was readable, no process
outlived the step, and the execution failed (or the write failed inside the step) with a reason.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from tars_bot.execution.sandbox import find_bwrap
from tests.helpers import (
    BASE,
    add_improvement,
    commit_files,
    git,
    improvement,
    run_tars,
    start_tars,
    wait_until,
    write_files,
)

TOKEN = "ghs_sandboxtestsecret0123456789"


@pytest.fixture
def repo(make_repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return make_repo(BASE)


def with_config(repo: Path, lines: str) -> None:
    text = (repo / "pyproject.toml").read_text() + lines
    commit_files(repo, {"pyproject.toml": text}, "config")


def git_state(repo: Path) -> dict[str, object]:
    """The user's checkout, refs and git's own files, by content."""
    dot_git = repo / ".git"
    watched = [dot_git / n for n in ("config", "HEAD", "index", "packed-refs")]
    watched += [
        p for d in ("hooks", "info", "refs/heads", "refs/tags") for p in (dot_git / d).rglob("*")
    ]
    watched += [p for p in repo.rglob("*") if ".git" not in p.relative_to(repo).parts]
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(watched)
        if p.is_file()
    } | {
        "refs": git(
            repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags"
        )
    }


def home_state() -> list[str]:
    home = Path(os.environ["HOME"])
    return sorted(
        f"{p.relative_to(home)}:{p.stat().st_size}"
        for p in home.rglob("*")
        if p.is_file() and ".cache" not in p.parts
    )


def execute(repo: Path, text: str | None) -> tuple[subprocess.CompletedProcess[str], dict]:
    if text is not None:
        add_improvement(repo, text)
    proc = run_tars(repo, "execute", "--improvement-id", "imp")
    history = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    return proc, history[0]


def step_log(repo: Path, execution: dict) -> str:
    return run_tars(repo, "status", "--execution-id", execution["id"], "--log", "1").stdout


def processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def assert_contained(repo: Path, before: dict, home_before: list[str], execution: dict) -> None:
    assert git_state(repo) == before
    assert home_state() == home_before
    assert execution["state"] in ("rolled_back", "failed")
    assert git(repo, "branch", "--list", "tars-bot/*") == ""


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param('echo x >> "{repo}/README.md"', id="1-user-checkout"),
        pytest.param('echo x > "{home}/planted"', id="1-home"),
        pytest.param(
            'git --git-dir="$(git rev-parse --git-common-dir)" update-ref refs/heads/main HEAD~0^{{tree}} || git update-ref refs/heads/main "$(git commit-tree -m x HEAD^{{tree}})"',
            id="2-move-main",
        ),
        pytest.param("git branch planted", id="2-new-branch"),
        pytest.param(
            'echo "ref: refs/heads/nowhere" > "$(git rev-parse --git-common-dir)/HEAD"',
            id="2-user-head",
        ),
        pytest.param(
            'echo "* filter=x" > "$(git rev-parse --git-common-dir)/info/attributes"', id="2-info"
        ),
        pytest.param(
            'git config --file "$(git rev-parse --git-common-dir)/config" core.fsmonitor "touch /tmp/pwned"',
            id="3-fsmonitor",
        ),
        pytest.param(
            'printf "#!/bin/sh\\ntouch /tmp/pwned\\n" > "$(git rev-parse --git-common-dir)/hooks/post-checkout"; chmod +x "$(git rev-parse --git-common-dir)/hooks/post-checkout"',
            id="3-hook",
        ),
        pytest.param(
            "echo x > src/pkg/new.py && git add -A && git -c user.name=x -c user.email=y commit -qm own",
            id="5-own-commit",
        ),
        pytest.param("git update-index --skip-worktree src/pkg/core.py", id="9-skip-worktree"),
    ],
)
def test_git_state_and_the_users_files_are_out_of_reach(repo, attack):
    """Whatever the step wrote outside its worktree landed where nothing outlives the run (a
    tmpfs, a git dir made for the worktree): the user's files and git state are as they
    were, and the branch holds only what the step left in its worktree."""
    command = attack.format(repo=repo, home=os.environ["HOME"])
    add_improvement(repo, improvement(f"set -e\n{command}"))
    before, home_before = git_state(repo), home_state()
    proc, execution = execute(repo, None)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    if execution["state"] == "succeeded":
        changed = git(repo, "diff", "--name-only", "main", "tars-bot/imp").split()
        assert set(changed) <= {"src/pkg/new.py"}, changed
        (repo / ".git/refs/heads/tars-bot/imp").unlink()  # as git branch -D, without packed-refs
    assert git_state(repo) == before
    assert home_state() == home_before
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize(
    ("attack", "named"),
    [
        pytest.param(
            'git update-ref refs/heads/main "$(git -c user.name=x -c user.email=y commit-tree -m x HEAD^{tree})"',
            "refs/heads/main",
            id="2-move-main",
        ),
        pytest.param(
            'echo "ref: refs/heads/nowhere" > "$(git rev-parse --git-common-dir)/HEAD"',
            ".git/HEAD",
            id="2-user-head",
        ),
        pytest.param(
            'echo "*.py filter=x" > "$(git rev-parse --git-common-dir)/info/attributes"',
            ".git/info/attributes",
            id="2-info",
        ),
        pytest.param(
            'git config --file "$(git rev-parse --git-common-dir)/config" core.fsmonitor "touch $HOME/pwned"',
            ".git/config",
            id="3-fsmonitor",
        ),
        pytest.param(
            'h="$(git rev-parse --git-common-dir)/hooks/pre-commit.sample"; t=$(stat -c %y "$h"); echo "touch /tmp/pwned" >> "$h"; touch -d "$t" "$h"',
            ".git/hooks/pre-commit.sample",
            id="4-hook-mtime-restored",
        ),
        pytest.param(
            "echo x > src/pkg/new.py && git add -A && git -c user.name=x -c user.email=y commit -qm own",
            "refs/heads/tars-bot/imp",
            id="5-own-commit",
        ),
        pytest.param(
            'git update-index --skip-worktree src/pkg/core.py && echo "VALUE = 2" > src/pkg/core.py',
            "index",
            id="9-skip-worktree",
        ),
    ],
)
def test_unsandboxed_git_state_is_put_back_and_the_step_fails(repo, attack, named):
    """sandbox = "off": git metadata is writable, so tars-bot puts back what a step changed."""
    with_config(repo, 'sandbox = "off"\n')
    if not (repo / ".git/hooks/pre-commit.sample").exists():
        write_files(repo / ".git/hooks", {"pre-commit.sample": "#!/bin/sh\n"})
    add_improvement(repo, improvement(f"set -e\n{attack}"))
    before, home_before = git_state(repo), home_state()
    proc, execution = execute(repo, None)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_contained(repo, before, home_before, execution)
    assert "changed git's own state, put back by tars-bot" in execution["failure_reason"]
    assert named.split("/")[-1] in execution["failure_reason"]
    assert execution["sandbox"]["sandboxed"] is False


def test_the_real_gitconfig_is_out_of_reach(repo):
    """7: `git config --global` writes the step's own throwaway HOME."""
    home_before = home_state()
    run = "git config --global url.http://127.0.0.1:9/.insteadOf https://github.com/\necho x > src/pkg/x.py"
    proc, _ = execute(repo, improvement(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home_state() == home_before
    assert "insteadOf" not in (Path(os.environ["HOME"]) / ".gitconfig").read_text()


def test_host_tmp_is_not_the_steps_tmp(repo):
    marker = Path("/tmp") / f"tars-escape-{uuid.uuid4().hex}"
    proc, execution = execute(repo, improvement(f"echo x > {marker}\necho ok > src/pkg/ok.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists()
    assert execution["steps"][0]["changed_files"] == ["src/pkg/ok.py"]


def test_tools_are_never_imported_from_the_checkout(repo, tmp_path):
    """6: a ruff/ package written by a step, or a nox/ package left untracked in the user's
    checkout, must not run instead of the real tools."""
    marker = tmp_path / "pwned"
    payload = f'from pathlib import Path\n\nPath("{marker}").write_text("x")\n'
    with_config(repo, "[tool.ruff]\nline-length = 300\n")  # the payload names a long path
    write_files(
        repo,
        {
            "nox/__init__.py": payload,
            "nox/__main__.py": payload,
            "noxfile.py": "import nox\n\n@nox.session(venv_backend='none')\ndef lint(session):\n    pass\n",
        },
    )
    git(repo, "add", "noxfile.py")
    git(repo, "commit", "-qm", "noxfile")
    text = f"""\
        title: tools
        target_components: ["**"]
        validation: {{per_step: [lint]}}
        steps:
          - name: plant
            write: {{path: ruff/__main__.py, content: {json.dumps(payload)}}}
          - name: plant init
            write: {{path: ruff/__init__.py, content: {json.dumps(payload)}}}
          - name: touch
            edit: {{path: src/pkg/core.py, search: "VALUE = 1", replace: "VALUE = 2"}}
        """
    add_improvement(repo, text)
    proc = run_tars(repo, "execute", "--improvement-id", "imp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists()


def test_secrets_are_not_readable(repo):
    """8: neither tars-bot's environment (through /proc) nor the step's own has the token."""
    run = """\
        { env; cat /proc/*/environ; cat /proc/1/environ; cat "$HOME/.gitconfig"; } 2>/dev/null | tr '\\0' '\\n' > src/pkg/seen.txt || true
        ls /proc >> src/pkg/seen.txt
        """
    proc, _ = execute(repo, improvement(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = git(repo, "show", "tars-bot/imp:src/pkg/seen.txt")
    assert TOKEN not in seen
    assert "Test User" not in seen  # the real ~/.gitconfig is hidden
    pids = [line for line in seen.splitlines() if line.isdigit()]
    assert len(pids) < 10  # a fresh /proc: only the sandbox's own processes


def test_a_daemon_does_not_outlive_its_step(repo):
    """10, 11: a double-forked, setsid daemon holding stdout open ends with the step."""
    marker = uuid.uuid4().hex
    run = f"""\
        (setsid sh -c 'while :; do sleep 0.2; echo {marker} > /dev/null; done' &)
        (setsid sh -c 'sleep 3600; : {marker}' &)
        echo done > src/pkg/done.py
        """
    proc, execution = execute(repo, improvement(run, "limits: {step_timeout: 30}\n"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert execution["steps"][0]["state"] == "applied"
    assert processes_with(marker) == []


def test_an_endless_setsid_child_holding_the_pipe_is_stopped_by_the_timeout(repo):
    marker = uuid.uuid4().hex
    run = f"(setsid sh -c 'sleep 3600; : {marker}' &)\nsleep 3600"
    proc, execution = execute(repo, improvement(run, "limits: {step_timeout: 2}\n"))
    assert proc.returncode == 1
    assert "timed out after 2s" in execution["failure_reason"]
    assert processes_with(marker) == []


def test_benefit_commands_are_sandboxed(repo):
    """12: a measured benefit's command cannot write hooks or config."""
    command = 'echo planted >> "$(git rev-parse --git-common-dir)/config"; echo 1'
    benefit = f"expected_benefits:\n  - {{name: speed, command: {json.dumps(command)}, measure: output, repeat: 1}}\n"
    add_improvement(repo, improvement("echo x > src/pkg/x.py") + benefit)
    before = git_state(repo)
    proc, execution = execute(repo, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert execution["benefits"][0]["after"] == 1
    after = git_state(repo)
    assert [after[k] for k in before if k.startswith((".git/config", ".git/hooks"))] == [
        before[k] for k in before if k.startswith((".git/config", ".git/hooks"))
    ]


def test_a_symlink_chain_leaving_the_tree_is_refused(repo):
    """13: src/b -> . makes b/b/b/b/../../../ climb out, though it looks inside."""
    run = "ln -s . src/b\nln -s b/b/b/b/../../../../etc/passwd src/p"
    _, execution = execute(repo, improvement(run))
    assert execution["state"] == "rolled_back"
    assert "src/p is a symbolic link leaving the worktree" in execution["failure_reason"]


@pytest.mark.parametrize("sandbox", ["required", "off"])
def test_a_huge_sparse_file_is_refused_without_being_read(repo, sandbox):
    """14: a 2 GB sparse file with max_file_mb: 1; tars-bot's memory stays small."""
    with_config(repo, f'sandbox = "{sandbox}"\n')
    add_improvement(
        repo, improvement("truncate -s 2G src/pkg/big.bin", "limits: {max_file_mb: 1}\n")
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tars_bot", "execute", "--improvement-id", "imp"],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 1
    [execution] = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    refused = "big.bin is 2147.5 MB, over the 1 MB limit" in execution["failure_reason"]
    assert refused or "File size limit exceeded" in step_log(repo, execution)
    assert usage.ru_maxrss / 1024 < 400  # MB: the file was never read into memory


def test_memory_is_a_total_over_the_steps_processes(repo):
    """15: four children of 150 MB each pass a per-process limit of 256 MB, not the total."""
    child = "python3 -c 'import time; b = bytearray(150 * 2**20); time.sleep(30)'"
    run = f"{child} & {child} & {child} & {child} & wait"
    proc, execution = execute(repo, improvement(run, "limits: {memory_mb: 256}\n"))
    assert proc.returncode == 1
    assert "together used over 256 MB" in execution["failure_reason"]
    assert processes_with("bytearray(150") == []


def test_an_improvement_cannot_raise_the_repositorys_limits(repo):
    """16"""
    with_config(repo, "limits = { memory_mb = 512, step_timeout = 60 }\n")
    add_improvement(
        repo,
        improvement("true", "limits: {memory_mb: 100000}\n").replace(
            "run: |", "timeout: 3600\n    run: |"
        ),
    )
    proc = run_tars(repo, "plan", "--improvement-id", "imp")
    assert proc.returncode == 2
    assert "limits.memory_mb: 100000 is over the repository's limit of 512" in proc.stderr
    assert "steps[1].timeout: 3600 is over the repository's limit of 60" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_step_dies_with_a_killed_tars_bot(repo):
    """17: kill -9 of tars-bot mid-step: nothing of the step keeps running, before or after
    `recover`."""
    marker = uuid.uuid4().hex
    run = f"(setsid sh -c 'sleep 3600; : {marker}' &)\ntouch src/started\nsleep 3600"
    add_improvement(repo, improvement(run))
    proc = start_tars(repo, "execute", "--improvement-id", "imp")
    wait_until(lambda: list((repo / ".git/tars-bot/worktrees").glob("*/src/started")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []
    assert run_tars(repo, "recover").returncode == 0
    assert processes_with(marker) == []


def test_recover_ends_a_sandbox_its_killed_owner_left(repo):
    """17: a sandbox whose tars-bot is gone (killed in the instant before bubblewrap could tie
    its namespace to it) is ended by `recover`, whatever runs in it."""
    marker = uuid.uuid4().hex
    worktree = repo / ".git" / "tars-bot" / "worktrees" / "pool-0"
    worktree.mkdir(parents=True)
    bwrap, _ = find_bwrap()
    jail = f"--ro-bind / / --dev /dev --proc /proc --bind {worktree} {worktree} --unshare-all"
    # the shell exits at once: the sandbox is left to init, as a killed tars-bot leaves it
    subprocess.run(["sh", "-c", f"{bwrap} {jail} -- sh -c 'sleep 3600; : {marker}' &"], check=True)
    deadline = time.monotonic() + 10
    while len(processes_with(marker)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(marker)
    result = run_tars(repo, "recover")
    assert "ended leftover step process" in result.stdout
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(marker) == []


def test_no_sandbox_means_nothing_runs(repo, tmp_path, monkeypatch):
    """sandbox = "required" where bubblewrap cannot work: a clear refusal, exit 2, nothing run."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TARS_BOT_BWRAP", str(fake))
    marker = tmp_path / "ran"
    add_improvement(repo, improvement(f"touch {marker}"))
    proc = run_tars(repo, "execute", "--improvement-id", "imp")
    assert proc.returncode == 2
    assert "sandbox: required, but" in proc.stderr
    assert "setting up uid map: Permission denied" in proc.stderr
    assert 'sandbox = "off"' in proc.stderr
    assert not marker.exists()
    assert json.loads(run_tars(repo, "history", "--format", "json").stdout) == []


def test_ordinary_steps_work_in_the_sandbox(repo):
    with_config(repo, "[tool.ruff]\nline-length = 100\n[tool.ruff.lint]\nselect = ['UP']\n")
    commit_files(repo, {"src/pkg/old.py": "class A(object):\n    pass\n"}, "old style")
    run = f"""\
        {sys.executable} -m ruff check --select UP --fix --exit-zero src
        {sys.executable} -c "open('src/pkg/gen.py', 'w').write('X = 1\\n')"
        git ls-files > src/pkg/files.txt
        git diff --stat >> src/pkg/files.txt
        """
    proc, execution = execute(repo, improvement(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert execution["steps"][0]["changed_files"] == [
        "src/pkg/files.txt",
        "src/pkg/gen.py",
        "src/pkg/old.py",
    ]
    assert "class A:" in git(repo, "show", "tars-bot/imp:src/pkg/old.py")
    files = git(repo, "show", "tars-bot/imp:src/pkg/files.txt")
    assert "src/pkg/core.py" in files and "old.py" in files
    assert execution["sandbox"]["sandboxed"] is True
    assert execution["sandbox"]["mechanism"].startswith("bubblewrap")


class _AskForCredentials(http.server.BaseHTTPRequestHandler):
    """A git host that wants credentials for everything, and remembers what it was sent."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization") or "")
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_the_token_goes_only_to_github_whatever_a_config_rewrites(repo):
    """7: a URL rewritten by `url.*.insteadOf` (here in the user's ~/.gitconfig, as an escaped
    step would have left it) never receives the push token."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AskForCredentials)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gitconfig = Path(os.environ["HOME"]) / ".gitconfig"
        rewrite = (
            f'[url "http://127.0.0.1:{server.server_port}/"]\n\tinsteadOf = https://github.com/\n'
        )
        gitconfig.write_text(gitconfig.read_text() + rewrite)
        git(repo, "remote", "add", "origin", "https://github.com/octo/app.git")
        add_improvement(repo, improvement("echo x > src/pkg/x.py"))
        # a process of its own: libgit2 reads the global config's location once per process
        proc = run_tars(repo, "execute", "--improvement-id", "imp", "--push")
    finally:
        server.shutdown()
        server.server_close()
    assert "tars-bot sends its token only to https://github.com" in proc.stdout + proc.stderr
    assert _AskForCredentials.seen  # the rewritten URL was asked
    sent = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert not [auth for auth in _AskForCredentials.seen if sent in auth or TOKEN in auth]


def test_a_nox_session_installs_its_dependencies_in_the_sandbox(repo):
    """Validation needs the network to build its virtualenv (check_network); it still runs in
    the sandbox, writing only the worktree and its virtualenv directory."""
    noxfile = (
        "import nox\n\n@nox.session\ndef tests(session):\n"
        '    session.install("six")\n    session.run("python", "-c", "import six")\n'
    )
    commit_files(repo, {"noxfile.py": noxfile}, "noxfile")
    proc, execution = execute(
        repo, improvement("echo x > src/pkg/x.py", "validation: {final: [tests]}\n")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c["status"] for c in execution["checks"]] == ["passed"]
    assert list((repo / ".git" / "tars-bot" / "nox").glob("*/tests/bin/python"))


def test_an_unsandboxed_check_that_plants_a_hook_fails_and_the_hook_is_removed(repo):
    """A nox session runs the tree's own code: unsandboxed, what it does to git is put back."""
    noxfile = (
        "import nox, subprocess\n\n@nox.session(venv_backend='none')\ndef tests(session):\n"
        "    hooks = subprocess.check_output(['git', 'rev-parse', '--git-common-dir'], text=True)\n"
        "    open(hooks.strip() + '/hooks/post-checkout', 'w').write('#!/bin/sh\\n')\n"
    )
    commit_files(
        repo,
        {"noxfile.py": noxfile, "pyproject.toml": BASE["pyproject.toml"] + 'sandbox = "off"\n'},
        "noxfile",
    )
    add_improvement(repo, improvement("echo x > src/pkg/x.py", "validation: {final: [tests]}\n"))
    proc, execution = execute(repo, None)
    assert proc.returncode == 1
    assert (
        "changed git's own state, put back by tars-bot: .git/hooks/post-checkout"
        in execution["failure_reason"]
    )
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()


def test_unsandboxed_a_child_holding_the_pipe_does_not_hang_tars_bot(repo):
    """11, sandbox = "off": a setsid child that keeps stdout open cannot keep tars-bot waiting
    (it escapes the step there, which the report says: "daemons may escape")."""
    with_config(repo, 'sandbox = "off"\n')
    marker = uuid.uuid4().hex
    run = f"(setsid sh -c 'sleep 3600; : {marker}' &)\necho x > src/pkg/x.py"
    try:
        proc, execution = execute(repo, improvement(run))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert execution["steps"][0]["state"] == "applied"
        assert "daemons may escape" in execution["sandbox"]["memory"]
    finally:  # the escaped daemon, and its sleep
        for pid in [int(line.split(":")[0]) for line in processes_with(marker)]:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
