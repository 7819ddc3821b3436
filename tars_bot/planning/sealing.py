"""Plan seals: a plan's digest sealed with an HMAC under the plan key, which lives outside every
repository, so that a plan edited after planning (or made elsewhere) is never taken for ours."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from tars_bot.errors import TarsError
from tars_bot.models import ExecutionPlan

KEY_ENV = "TARS_BOT_PLAN_KEY"


def seal(given: ExecutionPlan) -> ExecutionPlan:
    """`given` with its digest, and the digest sealed with the plan key."""
    sealed = given.sealed()
    return sealed.model_copy(update={"seal": _hmac(sealed.digest)})


def sealed_here(given: ExecutionPlan) -> bool:
    """Whether `given` is, unchanged, a plan made with the plan key here."""
    return given.is_sealed and hmac.compare_digest(given.seal, _hmac(given.digest))


def _hmac(digest: str) -> str:
    mac = hmac.new(plan_key(), digest.encode(), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()


def plan_key() -> bytes:
    """TARS_BOT_PLAN_KEY where set (machines that share plans set the same), else the user's,
    made on first use beside tars-bot's log: never in a repository (sandboxed processes see its
    git dir), and under HOME, which they never see (XDG_CACHE_HOME may lie elsewhere). Lost, it
    is made again: plans sealed before are then believed only as plans made elsewhere are."""
    if shared := os.environ.get(KEY_ENV):
        return shared.encode()
    path = Path.home() / ".cache" / "tars-bot" / "plan-key"
    try:
        if not path.exists():
            _create_key(path)
        key = path.read_bytes()
    except OSError as e:
        raise TarsError(f"{path}: cannot keep the plan key ({e.strerror}); set {KEY_ENV}") from None
    if len(key) < 32:
        raise TarsError(f"{path}: holds no plan key; delete it, then plan again")
    return key


def _create_key(path: Path) -> None:
    """Written aside (mode 0600), then linked into place: whoever reads it reads a whole key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".plan-key-")
    aside = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # another tars-bot made it meanwhile
            path.hardlink_to(aside)
    finally:
        aside.unlink()
