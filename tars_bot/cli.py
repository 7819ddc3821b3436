"""The `tars-bot` command: argument parsing, and one function per verb returning an exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from tars_bot import __version__, demo, errors
from tars_bot.errors import EXIT_FAILED, EXIT_OK, TarsError
from tars_bot.models import AFTER_MERGE, Execution, ExecutionPlan, Improvement
from tars_bot.planning.loader import validation_problems
from tars_bot.system import ExecutionSystem
from tars_bot.ui import report, untrusted

LOG_TAIL_LINES = 20
FRESH_HELP = "run the checks even where a result for the tree is cached (and replace it)"
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


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _improvement_path(system: ExecutionSystem, args: argparse.Namespace, ref: str) -> Path:
    """--improvement-file as given, or the file of --improvement-id in the config at `ref`."""
    if args.improvement_file:
        return Path(args.improvement_file)
    return system.improvement_file(args.improvement_id, ref)


def cmd_plan(args: argparse.Namespace) -> int:
    system = ExecutionSystem(args.repo)
    path = _improvement_path(system, args, args.base)
    improvement = system.load_improvement(path)
    plan = system.plan(improvement, base=args.base, source=system.display_path(path))
    plan_json = plan.model_dump_json(indent=2) + "\n"
    if args.output_file and args.output_file != "-":
        Path(args.output_file).write_text(plan_json, encoding="utf-8")
    if args.format == "json" or args.output_file == "-":
        sys.stdout.write(plan_json)
    else:
        console = _console()
        report.print_plan(plan, console, args.verbose, system.risks(plan), args.explain_risk)
        if args.output_file:
            console.print(f"plan written to {args.output_file}")
    return EXIT_OK


def _load_plan(system: ExecutionSystem, args: argparse.Namespace) -> ExecutionPlan:
    if args.plan_file:
        path = Path(args.plan_file)
        try:
            plan = ExecutionPlan.model_validate_json(path.read_bytes())
        except OSError as e:
            raise TarsError(f"{args.plan_file}: cannot read: {e.strerror}") from None
        except ValidationError as e:
            raise TarsError(*validation_problems(e, args.plan_file)) from None
        return system.rebase(plan) if args.rebase else plan
    path = _improvement_path(system, args, "HEAD")
    return system.plan(system.load_improvement(path), source=system.display_path(path))


def cmd_execute(args: argparse.Namespace) -> int:
    system = ExecutionSystem(args.repo)
    plan = _load_plan(system, args)
    console = _console()
    mode = " (dry run)" if args.dry_run else ""
    title = report.shown(plan.improvement.title)
    console.print(f"Executing [bold]{plan.improvement.id}[/bold]{mode}: {title}")
    sandbox = system.sandbox(plan.base.commit)
    if sandbox.sandboxed:
        console.print(f"sandbox: {sandbox.mechanism}", style="dim")
    else:
        warning = 'NOT SANDBOXED (sandbox = "off" in [tool.tars-bot])'
        console.print(warning, style="bold yellow", markup=False)
    with report.LiveProgress(console, args.verbose) as progress:
        result = system.execute(plan, dry_run=args.dry_run, progress=progress, fresh=args.fresh)
    if result.diff is not None:
        _write_output(result.diff)
    execution = _print_outcome(system, result.execution_id, console, args.verbose)
    if execution.state == "unvalidated":
        console.print(
            f"branch {execution.branch or '-'} is kept: check it again with `tars-bot validate "
            f"--execution-id {execution.id}`, or roll it back with `tars-bot rollback "
            f"--execution-id {execution.id}`"
        )
    if result.success and result.branch and args.bundle:
        system.hand_off(result.execution_id, Path(args.bundle))
        console.print(f"bundle: {args.bundle} (branch {result.branch} and its journal)")
    if result.success and result.branch and (args.push or args.open_pr):
        _publish(system, result.execution_id, args, console)
    return EXIT_OK if result.success else EXIT_FAILED


def cmd_receive(args: argparse.Namespace) -> int:
    system = ExecutionSystem(args.repo)
    improvement = system.load_improvement(_improvement_path(system, args, args.trusted))
    execution = system.receive(Path(args.bundle), improvement, args.trusted)
    console = _console()
    console.print(
        f"checked: execution {execution.id}, branch {execution.branch} at "
        f"{(execution.head_commit or '')[:10]}: tars-bot's commits only, each step within its "
        "scope, on the plan computed here"
    )
    if args.push or args.open_pr:
        _publish(system, execution.id, args, console)
    return EXIT_OK


def _print_outcome(
    system: ExecutionSystem, execution_id: str, console: Console, verbose: bool
) -> Execution:
    """The end of an execution's output: what failed (unless streamed), where the details
    are, and the verdict."""
    execution = system.status(execution_id)
    if not verbose:
        _print_failing_output(system, execution, console)
    console.print(f"details: tars-bot status --execution-id {execution.id}", style="dim")
    style = {"succeeded": "green", "unvalidated": "yellow"}.get(execution.state, "red")
    console.print(report.shown(report.verdict(execution)), style=style)
    return execution


def _failing_output(system: ExecutionSystem, execution: Execution) -> tuple[str, str] | None:
    """(title, text): the output of what made the execution not succeed: the failed step, the
    check that could not run, or the check that blamed a step."""
    failed = next((s for s in execution.steps if s.state == "failed"), None)
    if failed is not None:
        log = system.step_log(execution.id, failed.number) or b""
        return f"step {failed.number}'s output", log.decode(errors="replace")
    errored = next((c for c in execution.checks if c.status == "error"), None)
    if execution.state == "unvalidated" and errored is not None:
        return f"the output of check {errored.check}", errored.output
    if execution.culprits and execution.state != "succeeded":
        culprit = execution.culprits[-1]
        return f"the output of check {culprit.check}", culprit.result.output
    return None


def _print_failing_output(system: ExecutionSystem, execution: Execution, console: Console) -> None:
    found = _failing_output(system, execution)
    if found is None or not found[1].strip():
        return
    title, text = found
    console.print(f"last lines of {title}:", style="dim")
    tail = "\n".join(text.rstrip().splitlines()[-LOG_TAIL_LINES:])
    with untrusted.no_workflow_commands(os.environ, lambda line: console.out(line, end="")):
        console.out(untrusted.for_terminal(tail), highlight=False)


def _write_output(text: str) -> None:
    """What a step or check printed, or a diff of what it wrote, on stdout as written but
    unable to act on the terminal or the Actions log."""
    with untrusted.no_workflow_commands(os.environ):
        sys.stdout.write(untrusted.for_terminal(text))


def _publish(
    system: ExecutionSystem, execution_id: str, args: argparse.Namespace, console: Console
) -> None:
    token = os.environ.get("GITHUB_TOKEN")
    if not args.open_pr:
        system.push(execution_id, args.remote, token)
        console.print(f"pushed to {args.remote}")
        return
    from tars_bot.github import publish  # imported here: only --open-pr needs PyGithub
    from tars_bot.github.client import GitHubClient

    with GitHubClient.from_env(os.environ) as client:
        url = publish.publish(system, client, execution_id, token, args.remote)
    console.print(f"pull request: {url}")


def cmd_status(args: argparse.Namespace) -> int:
    system = ExecutionSystem(args.repo)
    execution = system.status(args.execution_id)
    if args.log is not None:
        if not any(s.number == args.log for s in execution.steps):
            raise TarsError(f"execution {execution.id} has no step {args.log}")
        log = system.step_log(execution.id, args.log)
        if log is None:  # a step that printed nothing, or never ran a command
            print(f"step {args.log} printed nothing", file=sys.stderr)
        _write_output((log or b"").decode(errors="replace"))
    elif args.format == "json":
        print(execution.model_dump_json(indent=2))
    else:
        _console().print(report.execution_renderable(execution))
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    summary = ExecutionSystem(args.repo).stats(rebuild=args.rebuild)
    if args.format == "json":
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        _console().print(report.stats_renderable(summary))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    executions = ExecutionSystem(args.repo).history(args.limit)
    if args.format == "json":
        print(json.dumps([e.model_dump(mode="json") for e in executions], indent=2))
    elif executions:
        _console().print(report.history_table(executions))
    else:
        _console().print("no executions yet")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    if args.cascade and args.step is None:
        raise TarsError("--cascade goes with --step N")
    token = os.environ.get("GITHUB_TOKEN")
    system = ExecutionSystem(args.repo)
    if system.status(args.execution_id, args.onto).state in AFTER_MERGE:
        return _revert_merged(system, args)
    if args.push or args.open_pr:
        raise TarsError("--push and --open-pr go with a merged execution's revert")
    execution = system.rollback(args.execution_id, args.step, args.cascade, token=token)
    console = _console()
    if execution.pull_request and os.environ.get("GITHUB_REPOSITORY"):
        _follow_pull_request(system, execution, args.step is None)
    if args.step is None:
        console.print(f"rolled back execution {execution.id}: branch {execution.branch} deleted")
    else:
        reverted = [s for s in execution.steps if s.state == "reverted"]
        for step in reversed(reverted):  # the order they were reverted in
            console.print(
                f'reverted step {step.number} "{report.shown(step.name)}" '
                f"with commit {(step.revert_commit or '')[:10]}"
            )
    console.print("verified", style="green")
    return EXIT_OK


def _revert_merged(system: ExecutionSystem, args: argparse.Namespace) -> int:
    """A merged execution's rollback: a revert on a branch of its own, checked, never pushed to
    the default branch."""
    if args.cascade:
        raise TarsError("--cascade is for steps on an unmerged branch; a merged step reverts alone")
    console = _console()
    original = system.status(args.execution_id, args.onto)
    landed = original.landed
    assert landed is not None  # merged
    console.print(
        f"execution {original.id} is merged ({landed.kind} {landed.commit[:10]}): its rollback "
        "is a revert on a new branch, checked like any execution"
    )
    with report.LiveProgress(console, args.verbose) as progress:
        result = system.revert(args.execution_id, args.step, args.onto, progress)
    _print_outcome(system, result.execution_id, console, args.verbose)
    if result.success and result.branch:
        console.print(f"revert branch: {result.branch}")
        if args.push or args.open_pr:
            _publish(system, result.execution_id, args, console)
    return EXIT_OK if result.success else EXIT_FAILED


def _follow_pull_request(system: ExecutionSystem, execution: Execution, whole: bool) -> None:
    from tars_bot.github import publish
    from tars_bot.github.client import GitHubClient

    with GitHubClient.from_env(os.environ) as client:
        publish.follow_rollback(system, client, execution.id, whole)


def cmd_action(args: argparse.Namespace) -> int:
    from tars_bot.github import action

    return action.run(os.environ, args.repo)


def cmd_serve(args: argparse.Namespace) -> int:
    from tars_bot.github import app, local

    run_local = local.runner(os.environ, local.default_cache()) if args.local_workers else None
    settings = app.AppSettings.from_env(
        os.environ,
        workflow_file=args.workflow,
        local_workers=args.local_workers,
        run_local=run_local,
    )
    app.serve(settings, args.host, args.port)
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    done = ExecutionSystem(args.repo).recover()
    for line in done:
        print(line)
    if not done:
        print("nothing to recover")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    system = ExecutionSystem(args.repo)
    results = system.validate(args.execution_id, args.sessions, fresh=args.fresh)
    if args.format == "json":
        print(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        console = _console()
        for result in results:
            style = "green" if result.passed else "red"
            cached = " (cached)" if result.cached else f" in {result.duration_s:.1f}s"
            console.print(f"[{style}]{report.shown(result.describe())}[/{style}]{cached}")
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    system = ExecutionSystem(args.repo)
    failed = 0
    for name in args.files:
        path = Path(name)
        display = system.display_path(path)
        try:
            system.plan(system.load_improvement(path), source=display)
        except TarsError as e:
            failed += 1
            for problem in e.problems:
                print(untrusted.for_terminal(problem), file=sys.stderr)
        else:
            if args.verbose:
                print(f"{display}: ok")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(Improvement.model_json_schema())
    print(json.dumps(schema, indent=2))
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    info, seen = ExecutionSystem(args.repo).sandbox_view(check=args.check)
    if args.format == "json":
        mounts = [dataclasses.asdict(m) for m in seen.mounts] if seen else []
        left_out = seen.left_out if seen else []
        print(json.dumps({"mechanism": info.mechanism, "mounts": mounts, "left_out": left_out}))
        return EXIT_OK
    _console().print(report.sandbox_renderable(info, seen, args.check))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    return demo.run(_console(), Path(args.dir) if args.dir else None)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1, found {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tars-bot",
        description="Execute code improvements safely: one branch per improvement, one commit "
        "per step.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tars-bot {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repo", default=".", metavar="PATH", help="repository to work on (default: current)"
    )
    common.add_argument("--verbose", "-v", action="store_true", help="say more")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    plan = verbs.add_parser(
        "plan",
        parents=[common],
        help="turn an improvement into a checked execution plan",
        description="Check an improvement against a base commit and print its execution plan. "
        "Nothing in the repository changes.",
    )
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument("--improvement-id", metavar="ID", help="load <improvements_dir>/ID.yaml")
    source.add_argument("--improvement-file", metavar="PATH", help="load this file")
    plan.add_argument(
        "--output-file", metavar="PATH", help="write the plan JSON here ('-': stdout)"
    )
    plan.add_argument("--base", default="HEAD", metavar="REF", help="commit to plan against")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.add_argument(
        "--explain-risk",
        action="store_true",
        help="say why each step is rated as risky as it is (from `tars-bot stats` history)",
    )
    plan.set_defaults(func=cmd_plan)

    execute = verbs.add_parser(
        "execute",
        parents=[common],
        help="run a plan: one commit per step on a new branch, isolated from your checkout",
        description="Execute a plan on branch <branch_prefix><id>: file steps in memory, "
        "commands in a worktree of tars-bot's own. Your checkout is never touched. A failing "
        "step rolls everything back (exit 1).",
    )
    source = execute.add_mutually_exclusive_group(required=True)
    source.add_argument("--plan-file", metavar="PATH", help="a plan written by `tars-bot plan`")
    source.add_argument("--improvement-id", metavar="ID", help="plan and execute this improvement")
    source.add_argument("--improvement-file", metavar="PATH", help="plan and execute this file")
    execute.add_argument(
        "--dry-run", action="store_true", help="apply in a throwaway worktree, print the diff"
    )
    execute.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    execute.add_argument(
        "--bundle",
        metavar="PATH",
        help="on success, write the branch and its journal as a git bundle for `tars-bot "
        "receive` in a job that may push (this one needs no write token)",
    )
    execute.add_argument(
        "--push", action="store_true", help="push the branch and its journal (GITHUB_TOKEN)"
    )
    execute.add_argument(
        "--open-pr",
        action="store_true",
        help="push, then open or update a pull request (GITHUB_REPOSITORY, GITHUB_TOKEN)",
    )
    execute.add_argument("--remote", default="origin", help="where to push (default: origin)")
    execute.add_argument(
        "--rebase",
        action="store_true",
        help="with --plan-file: plan its improvement again where its base ref is now",
    )
    execute.set_defaults(func=cmd_execute)

    status = verbs.add_parser("status", parents=[common], help="show one execution")
    status.add_argument("--execution-id", required=True, metavar="ID")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.add_argument("--log", type=_positive, metavar="N", help="print the output of step N")
    status.set_defaults(func=cmd_status)

    history = verbs.add_parser("history", parents=[common], help="list executions, newest first")
    history.add_argument("--limit", type=_positive, metavar="N", help="show at most N")
    history.add_argument("--format", choices=("text", "json"), default="text")
    history.set_defaults(func=cmd_history)

    stats = verbs.add_parser(
        "stats",
        parents=[common],
        help="what past executions say: success rate, what fails most, time saved",
        description="Read from the outcome index (refs/tars-bot/stats), which tars-bot keeps as "
        "executions start and end and pushes with the journal. --rebuild makes it again from "
        "the journals (refs/tars-bot/executions/*).",
    )
    stats.add_argument("--rebuild", action="store_true", help="rebuild the index first")
    stats.add_argument("--format", choices=("text", "json"), default="text")
    stats.set_defaults(func=cmd_stats)

    rollback = verbs.add_parser(
        "rollback",
        parents=[common],
        help="undo an execution, or one of its steps",
        description="Before the merge: without --step, delete the execution's branch (the "
        "journal keeps its commits); with --step N, add a commit reverting step N on the branch. "
        "Both are verified. After the merge: a new branch tars-bot/revert-ID from the default "
        "branch undoes the change (or step N), runs the same final checks, and with --open-pr "
        "becomes a pull request; a conflict with later work is refused, naming the files.",
    )
    rollback.add_argument("--execution-id", required=True, metavar="ID")
    rollback.add_argument("--step", type=_positive, metavar="N", help="revert only step N")
    rollback.add_argument(
        "--cascade", action="store_true", help="with --step: also revert the steps built on it"
    )
    rollback.add_argument(
        "--onto",
        metavar="BRANCH",
        help="the default branch it was merged into (default: origin's HEAD, main or master)",
    )
    rollback.add_argument(
        "--push", action="store_true", help="merged: push the revert branch (GITHUB_TOKEN)"
    )
    rollback.add_argument(
        "--open-pr", action="store_true", help="merged: push the revert and open its pull request"
    )
    rollback.add_argument("--remote", default="origin", help="where to push (default: origin)")
    rollback.set_defaults(func=cmd_rollback)

    receive = verbs.add_parser(
        "receive",
        parents=[common],
        help="check a bundle from `execute --bundle` against the plan, then push it",
        description="Split privilege: the job that ran the improvement held no write token. "
        "Here the plan is computed again from the trusted branch, and the bundle must hold "
        "exactly its branch and journal, tars-bot's commits only, each step within its scope, "
        "no protected path; otherwise nothing is pushed (exit 2).",
    )
    receive.add_argument("--bundle", required=True, metavar="PATH")
    wanted = receive.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--improvement-id", metavar="ID")
    wanted.add_argument("--improvement-file", metavar="PATH")
    receive.add_argument(
        "--trusted",
        default="HEAD",
        metavar="REF",
        help="the branch the plan's base must be on (default: HEAD, the default branch)",
    )
    receive.add_argument("--push", action="store_true", help="push the branch and its journal")
    receive.add_argument(
        "--open-pr", action="store_true", help="push, then open or update its pull request"
    )
    receive.add_argument("--remote", default="origin", help="where to push (default: origin)")
    receive.set_defaults(func=cmd_receive)

    validate = verbs.add_parser(
        "validate",
        parents=[common],
        help="run checks on an execution's result again (cached per tree)",
    )
    validate.add_argument("--execution-id", required=True, metavar="ID")
    validate.add_argument(
        "--sessions", nargs="+", metavar="S", help="nox sessions or tag:NAME (default: final)"
    )
    validate.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(func=cmd_validate)

    recover = verbs.add_parser(
        "recover",
        parents=[common],
        help="finish or undo what killed processes left: executions, worktrees, locks",
    )
    recover.set_defaults(func=cmd_recover)

    action_parser = verbs.add_parser(
        "action",
        parents=[common],
        help="the GitHub Action entrypoint (reads GITHUB_EVENT_NAME and GITHUB_EVENT_PATH)",
    )
    action_parser.set_defaults(func=cmd_action)

    serve = verbs.add_parser(
        "serve",
        help="receive GitHub webhooks (TARS_BOT_WEBHOOK_SECRET) and hand commands to Actions",
        description="A GitHub App webhook receiver: verifies each delivery's signature, answers "
        "at once, and dispatches authorized /tars-bot commands to the repository's tars-bot "
        "workflow, or runs them here with --local-workers.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--local-workers",
        type=int,
        default=0,
        metavar="N",
        help="run commands on this host, N repositories at once, each execute in a child "
        "process with a read-only token (default: dispatch to Actions)",
    )
    serve.add_argument("--workflow", default="tars-bot.yml", help="the workflow to dispatch")
    serve.set_defaults(func=cmd_serve)

    check = verbs.add_parser(
        "check",
        parents=[common],
        help="validate improvement files (the pre-commit hook)",
        description="Validate improvement files: schema, and feasibility against HEAD. "
        "Prints every problem; exits 1 if any file has one.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_check)

    schema = verbs.add_parser("schema", help="print the JSON Schema of improvement files")
    schema.set_defaults(func=cmd_schema)

    sandbox = verbs.add_parser(
        "sandbox",
        parents=[common],
        help="show what sandboxed processes see, and why",
        description="Print the sandbox's view: every directory a run step (or, with --check, "
        "a nox session) can see, read-only or writable, and why it is there. Nothing else of "
        "the host is visible. Directories left out (a PATH entry that contains your checkout, "
        "say) are listed with the reason. Add more with `sandbox_paths` in [tool.tars-bot].",
    )
    sandbox.add_argument("--check", action="store_true", help="the view of a nox session")
    sandbox.add_argument("--format", choices=("text", "json"), default="text")
    sandbox.set_defaults(func=cmd_sandbox)

    demo_parser = verbs.add_parser("demo", help="build a sample repository and run tars-bot on it")
    demo_parser.add_argument(
        "--dir", metavar="PATH", help="where to build it (default: a temp dir)"
    )
    demo_parser.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    return errors.run(args.func, args)
