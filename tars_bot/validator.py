"""Change Validator: nox sessions of the target repository."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.git import Repo

NOXFILE = "noxfile.py"


@dataclass(frozen=True)
class NoxSessions:
    names: frozenset[str]  # both `tests` and its parametrized `tests-3.11`
    tags: frozenset[str]

    def missing(self, check: str) -> str | None:
        """Why `check` (a session name or tag:NAME) selects nothing, or None when it selects."""
        if check.startswith("tag:"):
            tag = check.removeprefix("tag:")
            return None if tag in self.tags else f"no nox session is tagged {tag!r}"
        return None if check in self.names else f"no nox session named {check!r}"

    def describe(self) -> str:
        return ", ".join(sorted(self.names)) or "none"


def _run_list(noxfile: Path) -> list[dict[str, object]]:
    # nox has no stable Python API (nox.main reads sys.argv and exits), so it runs as a process.
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-f", str(noxfile)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=noxfile.parent,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TarsError(f"{NOXFILE}: nox cannot list its sessions: {detail}")
    return json.loads(proc.stdout)


def list_sessions(repo: Repo, tree: str) -> NoxSessions | None:
    """The sessions of the noxfile in `tree`, or None without one. Cached by noxfile blob."""
    blob = repo.blob_id(tree, NOXFILE)
    if blob is None:
        return None
    cache = repo.git_dir / "tars-bot" / "cache" / "nox-list" / f"{blob}-{version('nox')}.json"
    if cache.is_file():
        sessions = json.loads(cache.read_text())
    else:
        workdir_noxfile = repo.workdir / NOXFILE
        if workdir_noxfile.is_file() and repo.hash_file(workdir_noxfile) == blob:
            sessions = _run_list(workdir_noxfile)  # same content, and its local imports resolve
        else:
            with tempfile.TemporaryDirectory() as tmp:
                noxfile = Path(tmp) / NOXFILE
                noxfile.write_bytes(repo.read(tree, NOXFILE) or b"")
                sessions = _run_list(noxfile)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(sessions))
    names = {str(s["name"]) for s in sessions} | {str(s["session"]) for s in sessions}
    tags = {str(tag) for s in sessions for tag in s.get("tags") or []}  # type: ignore[attr-defined]
    return NoxSessions(frozenset(names), frozenset(tags))
