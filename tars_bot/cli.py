"""The `tars-bot` command: one function per verb returning an exit code, and the table binding
each to its parser (in `arguments`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tars_bot import __version__, arguments, errors
from tars_bot.errors import EXIT_FAILED, EXIT_OK, TarsError
from tars_bot.ui import untrusted

# each verb imports what it needs: `--version` and `check` must start fast (no pydantic, rich,
# PyGithub or griffe for them)
if TYPE_CHECKING:
    from rich.console import Console

    from tars_bot.models import Execution, ExecutionPlan, Improvement
    from tars_bot.stages.ci import CIReport
    from tars_bot.system import ExecutionSystem

LOG_TAIL_LINES = 20


def _console(wide: bool = False) -> Console:
    from tars_bot.ui import terminal

    return terminal.console(wide)


def _improvement_path(system: ExecutionSystem, args: argparse.Namespace, ref: str) -> Path:
    """--improvement-file as given, or the file of --improvement-id in the config at `ref`."""
    if args.improvement_file:
        return Path(args.improvement_file)
    return system.improvement_file(args.improvement_id, ref)


def cmd_plan(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    system = ExecutionSystem(args.repo)
    path = _improvement_path(system, args, args.base)
    improvement = system.load_improvement(path)
    _warn_uncommitted(system, args.base, improvement)
    plan = system.plan(improvement, base=args.base, source=system.display_path(path))
    plan_json = plan.model_dump_json(indent=2) + "\n"
    if args.output_file and args.output_file != "-":
        Path(args.output_file).write_text(plan_json, encoding="utf-8")
    if args.format == "json" or args.output_file == "-":
        sys.stdout.write(plan_json)
    else:
        console = _console(wide=True)
        report.print_plan(plan, console, args.verbose, system.risks(plan), args.explain_risk)
        if args.output_file:
            console.print(f"plan written to {args.output_file}")
    return EXIT_OK


def _warn_uncommitted(system: ExecutionSystem, base: str, improvement: Improvement) -> None:
    from tars_bot.planning import uncommitted  # imported here: cli stays light to import

    uncommitted.warn(system.repo, base, improvement)


def _load_plan(system: ExecutionSystem, args: argparse.Namespace) -> ExecutionPlan:
    from pydantic import ValidationError

    from tars_bot.models import ExecutionPlan
    from tars_bot.planning.loader import validation_problems

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
    improvement = system.load_improvement(path)
    _warn_uncommitted(system, "HEAD", improvement)
    return system.plan(improvement, source=system.display_path(path))


def cmd_execute(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

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
        result = system.execute(
            plan,
            dry_run=args.dry_run,
            progress=progress,
            fresh=args.fresh,
            step_by_step=args.step_by_step,
        )
    if result.diff is not None:
        _write_diff(result.diff)
    if result.state == "parked":
        from tars_bot import cli_gates

        return cli_gates.at_terminal(system, result, console, args.verbose)
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
    from tars_bot.system import ExecutionSystem

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
    from tars_bot.ui import report

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


def _write_diff(diff: str) -> None:
    """A dry run's diff: coloured where colour shows (a terminal, no NO_COLOR, or FORCE_COLOR),
    else as `_write_output` writes any output."""
    from tars_bot.ui import terminal

    console = terminal.console()
    if console.color_system is None or console.no_color:
        _write_output(diff)
        return
    with untrusted.no_workflow_commands(os.environ, lambda line: console.out(line, end="")):
        console.print(terminal.diff_text(diff), end="")


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
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    system = ExecutionSystem(args.repo)
    args.execution_id = system.execution_id(args.execution_id, args.improvement_id)
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
        _console(wide=True).print(report.execution_renderable(execution))
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import promotion

    if not args.check:
        raise TarsError("promote: only --check is available here; the merge job promotes")
    system = ExecutionSystem(args.repo)
    execution_id = system.execution_id(args.execution_id, args.improvement_id)
    head = system.status(execution_id).head_commit
    ci = _commit_ci(head) if head else None
    findings = system.promotion_check(execution_id, requester=args.requester, ci=ci, onto=args.onto)
    if args.format == "json":
        print(promotion.as_json(execution_id, head, findings).model_dump_json(indent=2))
    else:
        print(untrusted.for_terminal(promotion.as_text(findings)), end="")
    return EXIT_OK if all(f.met for f in findings) else errors.EXIT_USAGE


def _commit_ci(head: str) -> list[CIReport] | None:
    """The CI on `head` when this runs with a GitHub repository and token; else None."""
    if not (os.environ.get("GITHUB_TOKEN") and os.environ.get("GITHUB_REPOSITORY")):
        return None
    from tars_bot.github.client import GitHubClient

    with GitHubClient.from_env(os.environ) as client:
        return client.commit_ci(head)


def cmd_stats(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    summary = ExecutionSystem(args.repo).stats(rebuild=args.rebuild)
    if args.format == "json":
        from tars_bot.models.output import Stats

        stats = Stats.model_validate(summary).model_dump(mode="json")
        print(json.dumps(stats, indent=2, sort_keys=True))  # keys sorted, as they always were
    else:
        _console(wide=True).print(report.stats_renderable(summary))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    executions = ExecutionSystem(args.repo).history(args.limit)
    if args.format == "json":
        print(json.dumps([e.model_dump(mode="json") for e in executions], indent=2))
    elif executions:
        _console(wide=True).print(report.history_table(executions))
    else:
        _console().print("no executions yet")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from tars_bot.models import AFTER_MERGE
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    if args.cascade and args.step is None:
        raise TarsError("--cascade goes with --step N")
    token = os.environ.get("GITHUB_TOKEN")
    system = ExecutionSystem(args.repo)
    args.execution_id = system.execution_id(args.execution_id, args.improvement_id)
    before = system.status(args.execution_id, args.onto)
    if before.state in AFTER_MERGE:
        return _revert_merged(system, args)
    if args.push or args.open_pr:
        raise TarsError("--push and --open-pr go with a merged execution's revert")
    console = _console()
    if before.is_rolled_back(args.step):
        what = "execution" if before.state == "rolled_back" else f"step {args.step} of execution"
        console.print(f"{what} {before.id} is already rolled back; nothing to do")
        return EXIT_OK
    execution = system.rollback(args.execution_id, args.step, args.cascade, token=token)
    whole = args.step is None or execution.state == "rolled_back"
    if execution.pull_request and os.environ.get("GITHUB_REPOSITORY"):
        _follow_pull_request(system, execution, whole)
    if args.step is None:
        console.print(f"rolled back execution {execution.id}: branch {execution.branch} deleted")
    else:
        was = {s.number: s.state for s in before.steps}
        # only what this rollback did, in the order it did it
        reverted = [s for s in execution.steps if s.revert_commit and was[s.number] != "reverted"]
        for step in reversed(reverted):
            console.print(
                f'reverted step {step.number} "{report.shown(step.name)}" '
                f"with commit {(step.revert_commit or '')[:10]}"
            )
        if execution.state == "rolled_back":
            console.print(
                f"every step is reverted: rolled back execution {execution.id}, "
                f"branch {execution.branch} deleted"
            )
    console.print("verified", style="green")
    if execution.checks_stale and execution.state != "rolled_back":
        console.print(
            f"checks {execution.checks_stale}: check the new tip with "
            f"`tars-bot validate --execution-id {execution.id}`"
        )
    return EXIT_OK


def _revert_merged(system: ExecutionSystem, args: argparse.Namespace) -> int:
    """A merged execution's rollback: a revert on a branch of its own, checked, never pushed to
    the default branch."""
    from tars_bot.ui import report

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
        abandon_local=run_local.abandon if run_local else None,
    )
    app.serve(settings, args.host, args.port)
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem

    done = ExecutionSystem(args.repo).recover(args.set_aside)
    for line in done:
        print(line)
    if not done:
        print("nothing to recover")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    system = ExecutionSystem(args.repo)
    args.execution_id = system.execution_id(args.execution_id, args.improvement_id)
    results = system.validate(args.execution_id, args.sessions, fresh=args.fresh)
    if args.format == "json":
        from tars_bot.models.output import Validated

        print(Validated(results=results).model_dump_json(indent=2))
    else:
        console = _console()
        for result in results:
            style = "green" if result.passed else "red"
            cached = " (cached)" if result.cached else f" in {result.duration_s:.1f}s"
            console.print(f"[{style}]{report.shown(result.describe())}[/{style}]{cached}")
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    from tars_bot import checking  # imported here: a pre-commit hook must start fast

    as_json = args.format == "json"
    return checking.run(
        args.repo, args.files, hook=args.hook, verbose=args.verbose, as_json=as_json
    )


def cmd_init(args: argparse.Namespace) -> int:
    from tars_bot.onboarding import command  # imported here: only init needs it

    return command.run(args.repo, args.action_ref, args.force, args.check, args.format)


def cmd_schema(args: argparse.Namespace) -> int:
    from tars_bot.ui import schemas

    print(json.dumps(schemas.schema(args.kind), indent=2))
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from tars_bot.system import ExecutionSystem
    from tars_bot.ui import report

    info, seen = ExecutionSystem(args.repo).sandbox_view(check=args.check)
    if args.format == "json":
        import dataclasses

        from tars_bot.models.output import SandboxView

        mounts = [dataclasses.asdict(m) for m in seen.mounts] if seen else []
        left_out = list(seen.left_out) if seen else []
        view = SandboxView(mechanism=info.mechanism, mounts=mounts, left_out=left_out)
        print(view.model_dump_json(indent=2))
        return EXIT_OK
    _console(wide=True).print(report.sandbox_renderable(info, seen, args.check))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from tars_bot import demo

    return demo.run(_console(), Path(args.dir) if args.dir else None)


def _parser() -> argparse.ArgumentParser:
    parser, verbs, common = arguments.top()
    for verb_parser, command in (  # in the order `tars-bot --help` lists them
        (arguments.plan_parser, cmd_plan),
        (arguments.execute_parser, cmd_execute),
        (arguments.status_parser, cmd_status),
        (arguments.promote_parser, cmd_promote),
        (arguments.history_parser, cmd_history),
        (arguments.stats_parser, cmd_stats),
        (arguments.rollback_parser, cmd_rollback),
        (arguments.receive_parser, cmd_receive),
        (arguments.validate_parser, cmd_validate),
        (arguments.recover_parser, cmd_recover),
        (arguments.action_parser, cmd_action),
        (arguments.serve_parser, cmd_serve),
        (arguments.init_parser, cmd_init),
        (arguments.check_parser, cmd_check),
        (arguments.schema_parser, cmd_schema),
        (arguments.sandbox_parser, cmd_sandbox),
        (arguments.demo_parser, cmd_demo),
        (arguments.approve_parser, _gates("approve")),
        (arguments.reject_parser, _gates("reject")),
        (arguments.pause_parser, _gates("pause")),
        (arguments.resume_parser, _gates("resume")),
        (arguments.pending_parser, _gates("pending")),
    ):
        verb_parser(verbs, common).set_defaults(func=command)
    return parser


def _gates(verb: str) -> Callable[[argparse.Namespace], int]:
    """A gate verb's command, imported when it runs (`cli_gates` needs rich and pydantic)."""

    def command(args: argparse.Namespace) -> int:
        from tars_bot import cli_gates

        run: Callable[[argparse.Namespace], int] = getattr(cli_gates, f"cmd_{verb}")
        return run(args)

    return command


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # before every verb's parser is built: asked often, by scripts
        print(f"tars-bot {__version__}")
        return EXIT_OK
    said, parser = io.StringIO(), _parser()
    try:
        with contextlib.redirect_stderr(said):
            args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        code = int(e.code or 0)
        unknown = arguments.misspelt(parser, argv) if code else None
        if unknown:  # argparse would call it missing, or list it with its value
            said = io.StringIO(f"tars-bot: error: {unknown}\n")
        sys.stderr.write(said.getvalue())
        if code and _wants_json(argv):
            problem = said.getvalue().rstrip().splitlines()[-1].partition(" error: ")[2]
            errors.print_json_error(code, [problem])
        return code
    sys.stderr.write(said.getvalue())
    return errors.run(args.func, args)


def _wants_json(argv: list[str]) -> bool:
    """`--format json` asked for, whether or not the rest parsed."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return "--format=json" in argv or any(pair == ("--format", "json") for pair in pairs)
