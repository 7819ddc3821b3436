"""A `run` step finds the tools tars-bot ships (ruff) without tars-bot's venv activated."""

from __future__ import annotations

import sysconfig
import textwrap
from pathlib import Path

from tests.helpers import BASE, add_improvement, git

OLD_STYLE = "class Thing(object):\n    pass\n"


def test_the_readme_ruff_step_runs_without_an_activated_venv(cli, make_repo, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # tars-bot started by absolute path
    repo = make_repo({**BASE, "src/pkg/old.py": OLD_STYLE})
    add_improvement(
        repo,
        textwrap.dedent(
            """\
            title: pyupgrade
            target_components: [core]
            steps:
              - name: Apply pyupgrade rules
                run: ruff check --select UP --fix --exit-zero src
            """
        ),
    )
    result = cli("execute", "--repo", repo, "--improvement-id", "imp")
    assert result.code == 0, result.err + result.out
    assert git(repo, "show", "tars-bot/imp:src/pkg/old.py").startswith("class Thing:")


def test_the_sandbox_view_says_why_tars_bots_scripts_are_there(cli, make_repo, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    repo = make_repo(BASE)
    result = cli("sandbox", "--repo", repo)
    assert result.code == 0, result.err
    shown = " ".join(result.out.split())
    assert str(Path(sysconfig.get_path("scripts")).resolve()) in shown
    assert "tars-bot's scripts (ruff, nox), last on PATH" in shown
