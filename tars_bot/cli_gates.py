"""The gate verbs: `approve`, `reject`, `pause`, `resume`, `pending` (each `(args) -> int`)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from tars_bot.errors import EXIT_FAILED, EXIT_OK
from tars_bot.execution import gates
from tars_bot.execution.orchestrate import ExecutionResult
from tars_bot.system import ExecutionSystem
from tars_bot.ui import gate_prompt, report, terminal, wording


def cmd_approve(args: argparse.Namespace) -> int:
    system, execution_id = _named(args)
    total = len(system.plan_of(execution_id).steps)
    through = total if args.all else args.through
    ask = gates.Ask("approve", gates.local_user(), step=args.step, sha=args.sha, through=through)
    console = terminal.console()
    with report.LiveProgress(console, args.verbose) as progress:
        result = system.approve(execution_id, ask, progress)
    return outcome(system, result, console)


def cmd_reject(args: argparse.Namespace) -> int:
    system, execution_id = _named(args)
    ask = gates.Ask("reject", gates.local_user(), step=args.step, sha=args.sha, reason=args.reason)
    console = terminal.console()
    with report.LiveProgress(console, args.verbose) as progress:
        result = system.reject(execution_id, ask, progress)
    if result.state == "rolled_back":
        console.print(f"rejected: execution {result.execution_id} rolled back, its branch deleted")
        return EXIT_FAILED
    return outcome(system, result, console)


def cmd_resume(args: argparse.Namespace) -> int:
    system, execution_id = _named(args)
    console = terminal.console()
    with report.LiveProgress(console, args.verbose) as progress:
        result = system.resume(execution_id, progress)
    return outcome(system, result, console)


def cmd_pause(args: argparse.Namespace) -> int:
    system, execution_id = _named(args)
    execution = system.pause(execution_id)
    print(
        f"asked execution {execution.id} to park before its next step; "
        f"continue it with `tars-bot resume --execution-id {execution.id}`"
    )
    return EXIT_OK


def cmd_pending(args: argparse.Namespace) -> int:
    from tars_bot.models.output import ParkedExecution, Pending

    parked = []
    for execution in ExecutionSystem(args.repo).pending():
        gate, command = execution.gate, wording.approve_command(execution)
        assert gate is not None and command is not None  # parked
        parked.append(
            ParkedExecution(
                id=execution.id,
                improvement=execution.improvement,
                gate=gate.id,
                step=gate.step,
                commit=gate.commit,
                status=gate.status,
                expires_at=gate.expires_at,
                command=command,
            )
        )
    if args.format == "json":
        print(Pending(parked=parked).model_dump_json(indent=2))
    elif not parked:
        print("no parked executions")
    for p in parked if args.format == "text" else []:
        print(f"{p.id} {p.improvement} {p.gate} at {p.commit[:10]}, expires {p.expires_at}")
        print(f"  {p.command}")
    return EXIT_OK


def at_terminal(
    system: ExecutionSystem, result: ExecutionResult, console: Console, verbose: bool
) -> int:
    """The end of an execute: at a terminal, each gate it parks at asks what to do (approve,
    reject, diff, or quit, leaving it parked); elsewhere it stays parked (`outcome`)."""
    while sys.stdin.isatty() and sys.stdout.isatty():
        execution = system.status(result.execution_id)
        gate = execution.gate
        if execution.state != "parked" or gate is None or gate.status != "pending":
            break
        console.print(wording.gate_line(execution), soft_wrap=True)
        choice = gate_prompt.ask(console)
        if choice == "quit":
            break
        if choice == "diff":
            console.print(terminal.diff_text(system.gate_diff(execution.id)), end="")
            continue
        ask = gates.Ask(choice, gates.local_user(), step=gate.step, sha=gate.commit)
        decide = system.approve if choice == "approve" else system.reject
        with report.LiveProgress(console, verbose) as progress:
            result = decide(execution.id, ask, progress)
    return outcome(system, result, console)


def outcome(system: ExecutionSystem, result: ExecutionResult, console: Console) -> int:
    """The end of an execute or a resume: parked (exit 0, the command that continues it), or
    the execution's verdict."""
    execution = system.status(result.execution_id)
    if execution.state == "parked":
        command, gate = wording.approve_command(execution), execution.gate
        assert gate is not None
        console.print(f"{wording.gate_line(execution)}: no process waits for it", soft_wrap=True)
        console.print(f"to continue: {command}", markup=False, soft_wrap=True)
        console.print(f"to stop: tars-bot reject --execution-id {execution.id}", soft_wrap=True)
        return EXIT_OK
    console.print(f"details: tars-bot status --execution-id {execution.id}", style="dim")
    style = {"succeeded": "green", "unvalidated": "yellow"}.get(execution.state, "red")
    console.print(report.shown(report.verdict(execution)), style=style)
    return EXIT_OK if result.success else EXIT_FAILED


def _named(args: argparse.Namespace) -> tuple[ExecutionSystem, str]:
    system = ExecutionSystem(args.repo)
    return system, system.execution_id(args.execution_id, args.improvement_id)
