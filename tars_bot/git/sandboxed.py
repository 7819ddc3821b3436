"""Git for a sandboxed process: a git dir made for one worktree only.

It holds the worktree's HEAD (and its branch), a copy of its index, the repository's objects
through alternates (read-only), `info/exclude` and a config reduced to what reading needs. The
user's index, stash, reflogs, other refs, `modules/`, other worktrees and every credential in
config stay out; what the process writes into it is thrown away with the run.
"""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pygit2

# config the sandbox's git may see: enough to read the worktree, nothing that runs code
# (core.fsmonitor, hooksPath, sshCommand), rewrites URLs or carries credentials (extraheader)
SAFE_CORE = (
    "repositoryformatversion", "filemode", "symlinks", "ignorecase", "precomposeunicode",
    "autocrlf", "eol", "safecrlf", "quotepath",
)  # fmt: skip


def make_git_dir(worktree: Path, into: Path, inside: Path) -> list[Path]:
    """Write the git dir for `worktree` at `into` (seen at `inside` by the process); the
    object directories it reads through alternates, which the sandbox must show read-only.
    Empty when `worktree` is not one of tars-bot's worktrees."""
    try:
        repo = pygit2.Repository(str(worktree))
    except pygit2.GitError:
        return []
    admin = Path(repo.path)
    if not (admin / "commondir").is_file():  # the user's own checkout: its index is theirs
        return []
    common = (admin / (admin / "commondir").read_text().strip()).resolve()
    objects = [common / "objects"]
    objects += _alternates(objects[0])
    # few directories: on some file systems each costs milliseconds to make and remove
    (into / "objects" / "info").mkdir(parents=True)
    (into / "refs").mkdir()
    (into / "objects" / "info" / "alternates").write_text("".join(f"{p}\n" for p in objects))
    head = repo.lookup_reference("HEAD")
    if head.type == pygit2.enums.ReferenceType.SYMBOLIC and not repo.head_is_unborn:
        (into / "packed-refs").write_text(f"{repo.head.target} {head.target}\n")
        (into / "HEAD").write_text(f"ref: {head.target}\n")
    else:
        (into / "HEAD").write_text(f"{repo.head.target}\n")
    index = admin / "index"
    if index.is_file():
        shutil.copyfile(index, into / "index")
    exclude = common / "info" / "exclude"
    if exclude.is_file():
        shutil.copyfile(exclude, into / "exclude")
    (into / "config").write_text(_config(common / "config", inside / "exclude"))
    return objects


def _alternates(objects: Path) -> list[Path]:
    listed = objects / "info" / "alternates"
    if not listed.is_file():
        return []
    lines = listed.read_text(errors="replace").splitlines()
    found = [(objects / line).resolve() for line in lines if line and not line.startswith("#")]
    return [p for p in found if p.is_dir()]


def _config(path: Path, exclude: Path) -> str:
    """The repository's config reduced to what reading the worktree needs; the repository's
    `info/exclude`, copied, read as an excludes file."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    # git's config syntax is close enough to INI for the few keys kept
    try:
        parser.read_string(path.read_text(errors="replace") if path.is_file() else "")
    except configparser.Error:
        parser = configparser.RawConfigParser()
    lines = ["[core]", "\tbare = false", f"\texcludesFile = {exclude}"]
    if parser.has_section("core"):
        lines += [f"\t{k} = {v}" for k, v in parser.items("core") if k in SAFE_CORE]
    if parser.has_option("extensions", "objectformat"):
        lines += ["[extensions]", f"\tobjectformat = {parser.get('extensions', 'objectformat')}"]
    return "\n".join(lines) + "\n"
