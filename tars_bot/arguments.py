"""The `tars-bot` command line: each shared option defined once, and one parser per verb.

A verb's parser function takes the subparsers and the options every verb that works on a
repository has (`common`), and returns its parser; `cli` binds each to the function it runs.
"""

from __future__ import annotations

import argparse
import difflib
from argparse import ArgumentParser
from typing import TypeAlias

from tars_bot import __version__

# what `add_subparsers` returns (generic only to the type checker)
Verbs: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EPILOG = """\
examples:
  tars-bot plan --improvement-id utf8-io            plan .tars/improvements/utf8-io.yaml
  tars-bot plan --improvement-file x.yaml --format json --output-file plan.json
  tars-bot execute --improvement-id utf8-io          one commit per step on tars-bot/utf8-io
  tars-bot execute --plan-file plan.json --dry-run   show the change, keep nothing
  tars-bot history                                   what ran, newest first
  tars-bot check .tars/improvements/*.yaml           validate improvement files
  tars-bot schema > improvement.schema.json          JSON Schema for editors
  tars-bot demo                                      try it on a sample repository
"""


def top() -> tuple[ArgumentParser, Verbs, ArgumentParser]:
    """The `tars-bot` parser, its verbs to add to, and the options they share."""
    parser = ArgumentParser(
        prog="tars-bot",
        description="Execute code improvements safely: one branch per improvement, one commit "
        "per step.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tars-bot {__version__}")
    common = ArgumentParser(add_help=False)
    common.add_argument(
        "--repo", default=".", metavar="PATH", help="repository to work on (default: current)"
    )
    common.add_argument("--verbose", "-v", action="store_true", help="say more")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    return parser, verbs, common


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1, found {text!r}")
    return int(text)


def _add_format(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), or json for programs",
    )


def _add_execution_id(parser: ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--execution-id",
        metavar="ID",
        help="as `tars-bot history` lists it, a unique prefix of it, or `latest`",
    )
    which.add_argument("--improvement-id", metavar="ID", help="that improvement's latest execution")


def _add_fresh(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="run the checks even where a result for the tree is cached (and replace it)",
    )


def _add_improvement_source(parser: ArgumentParser, plan_file: bool = False) -> None:
    """The improvement to work on: one of its id or its file (or, with `plan_file`, a plan)."""
    source = parser.add_mutually_exclusive_group(required=True)
    if plan_file:
        source.add_argument("--plan-file", metavar="PATH", help="a plan written by `tars-bot plan`")
    source.add_argument("--improvement-id", metavar="ID", help="load <improvements_dir>/ID.yaml")
    source.add_argument("--improvement-file", metavar="PATH", help="load this file")


def _add_publishing(parser: ArgumentParser, description: str | None = None) -> None:
    publishing = parser.add_argument_group("publishing", description)
    publishing.add_argument(
        "--push", action="store_true", help="push the branch and its journal (GITHUB_TOKEN)"
    )
    publishing.add_argument(
        "--open-pr",
        action="store_true",
        help="push, then open or update its pull request (GITHUB_REPOSITORY, GITHUB_TOKEN)",
    )
    publishing.add_argument("--remote", default="origin", help="where to push (default: origin)")


def plan_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "plan",
        parents=[common],
        help="turn an improvement into a checked execution plan",
        description="Check an improvement against a base commit and print its execution plan. "
        "Nothing in the repository changes.",
    )
    _add_improvement_source(parser)
    parser.add_argument(
        "--output-file", metavar="PATH", help="write the plan JSON here ('-': stdout)"
    )
    parser.add_argument("--base", default="HEAD", metavar="REF", help="commit to plan against")
    _add_format(parser)
    parser.add_argument(
        "--explain-risk",
        action="store_true",
        help="say why each step is rated as risky as it is (from `tars-bot stats` history)",
    )
    return parser


def execute_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "execute",
        parents=[common],
        help="run a plan: one commit per step on a new branch, isolated from your checkout",
        description="Execute a plan on branch <branch_prefix><id>: file steps in memory, "
        "commands in a worktree of tars-bot's own. Your checkout is never touched. A failing "
        "step rolls everything back (exit 1).",
    )
    _add_improvement_source(parser, plan_file=True)
    parser.add_argument(
        "--dry-run", action="store_true", help="apply in a throwaway worktree, print the diff"
    )
    _add_fresh(parser)
    parser.add_argument(
        "--bundle",
        metavar="PATH",
        help="on success, write the branch and its journal as a git bundle for `tars-bot "
        "receive` in a job that may push (this one needs no write token)",
    )
    _add_publishing(parser, "after a successful execution")
    parser.add_argument(
        "--rebase",
        action="store_true",
        help="with --plan-file: plan its improvement again where its base ref is now",
    )
    parser.add_argument(
        "--step-by-step",
        action="store_true",
        help="park after every step for approval (`tars-bot approve`); the process exits",
    )
    return parser


def _add_gate(parser: ArgumentParser) -> None:
    """--step and --sha: what the person saw; they must name the pending gate."""
    parser.add_argument("--step", type=_positive, metavar="N", help="the step the gate is after")
    parser.add_argument("--sha", metavar="PREFIX", help="the gate's commit (a prefix of it)")


def approve_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "approve",
        parents=[common],
        help="approve a parked execution's gate, and continue it",
        description="Approve the pending gate of a parked execution (journaled first), then "
        "run its next steps; it may park again at the next gate.",
    )
    _add_execution_id(parser)
    _add_gate(parser)
    ahead = parser.add_mutually_exclusive_group()
    ahead.add_argument(
        "--through", type=_positive, metavar="N", help="approve the gates up to step N too"
    )
    ahead.add_argument("--all", action="store_true", help="approve every remaining gate")
    return parser


def reject_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "reject",
        parents=[common],
        help="reject a parked execution's gate (on_reject: roll back, or revert the step)",
    )
    _add_execution_id(parser)
    _add_gate(parser)
    parser.add_argument("--reason", default="", metavar="TEXT", help="why, for the journal")
    return parser


def pause_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "pause", parents=[common], help="park a running execution before its next step"
    )
    _add_execution_id(parser)
    return parser


def resume_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "resume",
        parents=[common],
        help="continue a paused execution (or one whose resume was killed)",
    )
    _add_execution_id(parser)
    return parser


def pending_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "pending", parents=[common], help="list parked executions waiting for a decision"
    )
    _add_format(parser)
    return parser


def status_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser("status", parents=[common], help="show one execution")
    _add_execution_id(parser)
    _add_format(parser)
    parser.add_argument("--log", type=_positive, metavar="N", help="print the output of step N")
    return parser


def promote_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "promote",
        parents=[common],
        help="what promoting an execution to prod requires, each requirement met or not",
        description="With --check, judge each requirement of [tool.tars-bot.stages] prod "
        "(read-only); exit 2 when one is unmet. The CI is read from GitHub when GITHUB_TOKEN "
        "and GITHUB_REPOSITORY are set.",
    )
    _add_execution_id(parser)
    _add_format(parser)
    parser.add_argument(
        "--check", action="store_true", help="only judge the requirements (merging is the "
        "workflow's merge job)"
    )  # fmt: skip
    parser.add_argument("--requester", metavar="LOGIN", help="who asked for the execution")
    parser.add_argument("--onto", metavar="BRANCH", help="the base branch (default: found)")
    return parser


def history_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser("history", parents=[common], help="list executions, newest first")
    parser.add_argument("--limit", type=_positive, metavar="N", help="show at most N")
    _add_format(parser)
    return parser


def stats_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "stats",
        parents=[common],
        help="what past executions say: success rate, what fails most, time saved",
        description="Read from the outcome index (refs/tars-bot/stats), which tars-bot keeps as "
        "executions start and end and pushes with the journal. --rebuild makes it again from "
        "the journals (refs/tars-bot/executions/*).",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the index first")
    _add_format(parser)
    return parser


def rollback_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "rollback",
        parents=[common],
        help="undo an execution, or one of its steps",
        description="Before the merge: without --step, delete the execution's branch (the "
        "journal keeps its commits); with --step N, add a commit reverting step N on the branch. "
        "Both are verified. After the merge: a new branch tars-bot/revert-ID from the default "
        "branch undoes the change (or step N), runs the same final checks, and with --open-pr "
        "becomes a pull request; a conflict with later work is refused, naming the files.",
    )
    _add_execution_id(parser)
    parser.add_argument("--step", type=_positive, metavar="N", help="revert only step N")
    parser.add_argument(
        "--cascade", action="store_true", help="with --step: also revert the steps built on it"
    )
    parser.add_argument(
        "--onto",
        metavar="BRANCH",
        help="the default branch it was merged into (default: origin's HEAD, main or master)",
    )
    _add_publishing(parser, "only for a merged execution, whose rollback is a revert branch")
    return parser


def receive_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "receive",
        parents=[common],
        help="check a bundle from `execute --bundle` against the plan, then push it",
        description="Split privilege: the job that ran the improvement held no write token. "
        "Here the plan is computed again from the trusted branch, and the bundle must hold "
        "exactly its branch and journal, tars-bot's commits only, each step within its scope, "
        "no protected path; otherwise nothing is pushed (exit 2).",
    )
    parser.add_argument("--bundle", required=True, metavar="PATH")
    _add_improvement_source(parser)
    parser.add_argument(
        "--trusted",
        default="HEAD",
        metavar="REF",
        help="the branch the plan's base must be on (default: HEAD, the default branch)",
    )
    _add_publishing(parser)
    return parser


def validate_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "validate",
        parents=[common],
        help="run checks on an execution's result again (cached per tree)",
    )
    _add_execution_id(parser)
    parser.add_argument(
        "--sessions", nargs="+", metavar="S", help="nox sessions or tag:NAME (default: final)"
    )
    _add_fresh(parser)
    _add_format(parser)
    return parser


def recover_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "recover",
        parents=[common],
        help="finish or undo what killed processes left: executions, worktrees, locks",
    )
    parser.add_argument(
        "--set-aside",
        action="store_true",
        help="move unreadable journal refs to refs/tars-bot/broken/ (their objects are kept)",
    )
    return parser


def action_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    return verbs.add_parser(
        "action",
        parents=[common],
        help="the GitHub Action entrypoint (reads GITHUB_EVENT_NAME and GITHUB_EVENT_PATH)",
    )


def serve_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    """Serves many repositories: no `common`."""
    parser = verbs.add_parser(
        "serve",
        help="receive GitHub webhooks (TARS_BOT_WEBHOOK_SECRET) and hand commands to Actions",
        description="A GitHub App webhook receiver: verifies each delivery's signature, answers "
        "at once, and dispatches authorized /tars-bot commands to the repository's tars-bot "
        "workflow, or runs them here with --local-workers.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--local-workers",
        type=int,
        default=0,
        metavar="N",
        help="run commands on this host, N repositories at once, each execute in a child "
        "process with a read-only token (default: dispatch to Actions)",
    )
    parser.add_argument("--workflow", default="tars-bot.yml", help="the workflow to dispatch")
    return parser


def init_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "init",
        parents=[common],
        help="set a repository up: config, an example improvement, the workflow",
        description="Set a repository up for tars-bot. Writes into the working tree (never HEAD,\n"
        "the index or a branch):\n"
        "  pyproject.toml                   [tool.tars-bot] with the nox sessions found:\n"
        "                                   lint-like ones after each step, test-like ones on\n"
        "                                   the result\n"
        "  <improvements_dir>/example.yaml  a first improvement, its fields explained\n"
        "  .github/workflows/tars-bot.yml   the workflow, its action pinned to --action-ref\n"
        "then prints the GitHub settings, token permissions and secrets to set, in order, and\n"
        "the commands to run next. Running it again changes nothing; a file that differs is\n"
        "replaced only with --force. --check writes nothing and reports every problem of the\n"
        "set-up, one line each (exit 2 if any).",
        epilog="examples:\n"
        "  tars-bot init                                  set up, with the published action\n"
        "  tars-bot init --action-ref tars-bot/tars-bot@<sha>   pin the action to a commit\n"
        "  tars-bot init --check                          validate config, improvements, workflow",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--action-ref",
        metavar="OWNER/REPO@REF",
        help="the action the workflow uses (default: the published one at this version's tag); "
        "a commit sha pins it best",
    )
    parser.add_argument("--force", action="store_true", help="replace files that differ")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; validate the whole set-up"
    )
    _add_format(parser)
    return parser


def check_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "check",
        parents=[common],
        help="validate improvement files (the pre-commit hook)",
        description="Validate improvement files: schema, and feasibility against HEAD, "
        "without running the noxfile where its sessions can be read from it. Prints every "
        "problem; exits 1 if any file has one.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument(
        "--hook",
        action="store_true",
        help="skip files outside the configured improvements_dir (as the pre-commit hook does)",
    )
    _add_format(parser)
    return parser


SCHEMA_KINDS = ("improvement", "plan", "execution", "history", "stats", "validate", "sandbox",
                "check", "promote", "pending", "error")  # fmt: skip


def schema_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    """Needs no repository: no `common`."""
    parser = verbs.add_parser(
        "schema",
        help="print the JSON Schema of improvement files, or of a JSON output",
        description="Print a JSON Schema: of improvement files (the default, for editors), or "
        "of what a command prints with --format json (each carries its `format`).",
    )
    parser.add_argument(
        "--kind", choices=SCHEMA_KINDS, default="improvement", help="what it describes"
    )
    return parser


def sandbox_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    parser = verbs.add_parser(
        "sandbox",
        parents=[common],
        help="show what sandboxed processes see, and why",
        description="Print the sandbox's view: every directory a run step (or, with --check, "
        "a nox session) can see, read-only or writable, and why it is there. Nothing else of "
        "the host is visible. Directories left out (a PATH entry that contains your checkout, "
        "say) are listed with the reason. Add more with `sandbox_paths` in [tool.tars-bot].",
    )
    parser.add_argument("--check", action="store_true", help="the view of a nox session")
    _add_format(parser)
    return parser


def demo_parser(verbs: Verbs, common: ArgumentParser) -> ArgumentParser:
    """Builds its own repository: no `common`."""
    parser = verbs.add_parser("demo", help="build a sample repository and run tars-bot on it")
    parser.add_argument("--dir", metavar="PATH", help="where to build it (default: a temp dir)")
    return parser


def misspelt(parser: ArgumentParser, argv: list[str]) -> str | None:
    """`unknown option --fromat; did you mean --format?` for the first option in `argv` that
    the verb does not know, where argparse would report a missing or unrecognized one."""
    verbs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    verb = next((a for a in argv if not a.startswith("-")), None)
    known = set(parser._option_string_actions)
    if verbs is not None and verb in verbs.choices:
        known |= set(verbs.choices[verb]._option_string_actions)
    for arg in argv:
        if arg == "--":
            break
        option = arg.partition("=")[0]
        if not option.startswith("--") or any(k.startswith(option) for k in known):
            continue  # a value, or an option (or an abbreviation argparse accepts)
        close = difflib.get_close_matches(option, sorted(known), n=1, cutoff=0.6)
        return f"unknown option {option}" + (f"; did you mean {close[0]}?" if close else "")
    return None
