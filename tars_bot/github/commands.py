"""Comment commands (`/tars-bot VERB ...` on the first line of a comment) and who may give them."""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from tars_bot.errors import TarsError
from tars_bot.ui import github_text

PREFIX = "/tars-bot"
MARKER = "<!-- tars-bot"  # starts the hidden marker in every comment tars-bot writes
DEFAULT_ALLOWED = frozenset({"admin", "maintain", "write"})
ROLES = ("read", "triage", "write", "maintain", "admin")  # weakest first
DIGEST_SHOWN = 16  # hex digits of a body digest shown and asked for: 64 bits, no forging them
USAGE = """\
usage: /tars-bot plan
       /tars-bot execute [--dry-run] [--digest HEX]
       /tars-bot status
       /tars-bot rollback [--step N] [--cascade]
       /tars-bot history
       /tars-bot approve [--step N] [--sha PREFIX] [--through N | --all]
       /tars-bot reject [--step N] [reason...]
       /tars-bot pause
       /tars-bot resume
       /tars-bot help"""


@dataclass(frozen=True)
class Command:
    verb: str
    dry_run: bool = False
    step: int | None = None
    cascade: bool = False
    digest: str | None = None  # execute only while the issue body's digest starts with this
    sha: str | None = None  # approve: the gate's commit, as the status comment showed it
    through: int | None = None  # approve the gates up to this step in advance
    approve_all: bool = False
    reason: str = ""  # reject: why, for the journal


class CommandError(TarsError):
    """A comment that starts with /tars-bot but is not a command; the message ends with usage."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}\n\n{USAGE}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(message)


def _step_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a step number from 1, found {text!r}")
    return int(text)


def _digest(text: str) -> str:
    if not re.fullmatch(f"[0-9a-f]{{{DIGEST_SHOWN},64}}", text):
        raise argparse.ArgumentTypeError(
            f"expected {DIGEST_SHOWN} to 64 hex digits of the issue's digest, found {text!r}"
        )
    return text


def _sha(text: str) -> str:
    if not re.fullmatch("[0-9a-fA-F]{4,40}", text):
        raise argparse.ArgumentTypeError(f"expected 4 to 40 hex digits of a commit, found {text!r}")
    return text.lower()


def body_digest(body: str) -> str:
    """The sha256 of an issue body: what an `execute` is bound to."""
    return hashlib.sha256(body.encode()).hexdigest()


def _parser() -> argparse.ArgumentParser:
    options: dict[str, Any] = {"add_help": False, "allow_abbrev": False}
    parser = _Parser(prog=PREFIX, **options)
    verbs = parser.add_subparsers(dest="verb", metavar="command", required=True)
    verbs.add_parser("plan", **options)
    execute = verbs.add_parser("execute", **options)
    execute.add_argument("--dry-run", action="store_true")
    execute.add_argument("--digest", type=_digest)
    verbs.add_parser("status", **options)
    rollback = verbs.add_parser("rollback", **options)
    rollback.add_argument("--step", type=_step_number)
    rollback.add_argument("--cascade", action="store_true")
    verbs.add_parser("history", **options)
    approve = verbs.add_parser("approve", **options)
    approve.add_argument("--step", type=_step_number)
    approve.add_argument("--sha", type=_sha)
    advance = approve.add_mutually_exclusive_group()
    advance.add_argument("--through", type=_step_number)
    advance.add_argument("--all", action="store_true", dest="approve_all")
    reject = verbs.add_parser("reject", **options)
    reject.add_argument("--step", type=_step_number)
    reject.add_argument("reason", nargs="*")
    verbs.add_parser("pause", **options)
    verbs.add_parser("resume", **options)
    verbs.add_parser("help", **options)
    return parser


def command_line(body: str) -> str | None:
    """The first line of `body` when it starts with /tars-bot, else None. As written: a leading
    blank line or space makes it no command, as the shipped workflow's
    `startsWith(github.event.comment.body, '/tars-bot')` also says."""
    first = body.split("\n", 1)[0].rstrip()
    return first if first.split(maxsplit=1)[:1] == [PREFIX] and first.startswith(PREFIX) else None


def parse_command(body: str) -> Command | None:
    """The command on the first line of `body`; None when the comment is not addressed to us.
    The Action and the webhook app both decide with this function."""
    first = command_line(body)
    if first is None:
        return None
    try:
        words = shlex.split(first)[1:]
    except ValueError as e:
        raise CommandError(f"cannot read the command: {e}") from e
    if not words:
        raise CommandError("missing command")
    args = _parser().parse_args(words)
    if getattr(args, "cascade", False) and args.step is None:
        raise CommandError("--cascade needs --step N")
    return Command(
        verb=args.verb,
        dry_run=getattr(args, "dry_run", False),
        step=getattr(args, "step", None),
        cascade=getattr(args, "cascade", False),
        digest=getattr(args, "digest", None),
        sha=getattr(args, "sha", None),
        through=getattr(args, "through", None),
        approve_all=getattr(args, "approve_all", False),
        reason=" ".join(getattr(args, "reason", None) or []),
    )


@dataclass(frozen=True)
class CommentEvent:
    """The fields of an `issue_comment` webhook payload that decide what to do."""

    action: str
    comment_id: int
    body: str
    user_login: str
    user_type: str
    issue_number: int
    is_pull_request: bool
    repository: str
    sender: str
    installation_id: int | None = None
    issue_body: str | None = None  # the issue's body in the event: what the commenter saw


def parse_event(payload: Mapping[str, Any]) -> CommentEvent:
    try:
        comment, issue = payload["comment"], payload["issue"]
        return CommentEvent(
            action=payload["action"],
            comment_id=comment["id"],
            body=comment["body"] or "",
            user_login=comment["user"]["login"],
            user_type=comment["user"]["type"],
            issue_number=issue["number"],
            is_pull_request=issue.get("pull_request") is not None,
            repository=payload["repository"]["full_name"],
            sender=payload["sender"]["login"],
            installation_id=(payload.get("installation") or {}).get("id"),
            issue_body=(issue["body"] or "") if "body" in issue else None,
        )
    except (KeyError, TypeError) as e:
        raise TarsError(f"not an issue_comment event: no {e} in the payload") from e


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # for the log
    reply: str | None = None  # for the commenter; None: stay silent


class PermissionLookup(Protocol):
    def permission(self, user: str) -> str: ...


def authorize(
    client: PermissionLookup, event: CommentEvent, allowed: Collection[str] = DEFAULT_ALLOWED
) -> Decision:
    """Whether to obey the comment. Permission comes from the API, not `author_association`,
    which says nothing about team or organization grants."""
    if event.action != "created":
        return Decision(False, f"comment {event.comment_id} was {event.action}, not created")
    if event.user_type == "Bot":
        return Decision(False, f"comment {event.comment_id} is by a bot, {event.user_login}")
    if MARKER in event.body:
        return Decision(False, f"comment {event.comment_id} is tars-bot's own")
    permission = client.permission(event.user_login)
    if permission in allowed:
        return Decision(True, f"{event.user_login} has {permission} permission")
    reason = f"{event.user_login} has {permission} permission, needs {_either(allowed)}"
    reply = github_text.refusal(event.user_login, permission, _either(allowed))
    return Decision(False, reason, reply)


class Replier(Protocol):
    def find_comment(self, number: int, marker: str) -> int | None: ...
    def comment(self, number: int, body: str) -> int: ...


def refuse(client: Replier, event: CommentEvent, decision: Decision) -> bool:
    """Post the decision's reply unless this commenter was refused on this issue already (a
    bot comment per `/tars-bot` comment by anyone would let anyone flood the thread)."""
    if decision.reply is None:
        return False
    if (
        client.find_comment(event.issue_number, github_text.refusal_marker(event.user_login))
        is not None
    ):
        return False
    client.comment(event.issue_number, decision.reply)
    return True


def _either(roles: Collection[str]) -> str:
    ordered = sorted(roles, key=lambda r: (ROLES.index(r) if r in ROLES else len(ROLES), r))
    return "".join(ordered) if len(ordered) <= 1 else f"{', '.join(ordered[:-1])} or {ordered[-1]}"
