"""Execution Planner: an improvement and a base commit in, a checked, ordered, sealed plan out."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from tars_bot.config import Config, parse_config
from tars_bot.errors import PlanError
from tars_bot.git import Repo, is_valid_branch_name
from tars_bot.models import (
    APPROVALS,
    Approval,
    Base,
    ExecutionPlan,
    Improvement,
    PatchAction,
    PlannedStep,
    RunAction,
    Step,
    Validation,
)
from tars_bot.paths import PathProblem, Scope, is_glob, normalize
from tars_bot.planning import actions
from tars_bot.planning.noxfile import NOXFILE, StaticSessions
from tars_bot.planning.sealing import seal

if TYPE_CHECKING:
    from tars_bot.validation.validator import NoxSessions

WHOLE_REPO = ["**"]
LARGE_PATCH_LINES = 1000


@dataclass
class _Context:
    repo: Repo
    improvement: Improvement
    source: str
    config: Config
    base: Base
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why

    @property
    def validation(self) -> Validation:
        return self.improvement.validation or self.config.validation

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.source}: {where}: {message}")

    def step_label(self, index: int) -> str:
        return f'step {index + 1} "{self.improvement.steps[index].name}"'


def plan(
    repo: Repo, improvement: Improvement, *, base_ref: str = "HEAD", source: str | None = None
) -> ExecutionPlan:
    """Plan `improvement` against `base_ref`. Raises PlanError listing every problem found."""
    ctx, scopes, files, edges, order = _checked(repo, improvement, base_ref, source, True)
    _check_sessions(ctx, ctx.validation, _listed_by_nox)
    if ctx.problems:
        raise PlanError(*ctx.problems)
    improvement, validation, config = ctx.improvement, ctx.validation, ctx.config
    number = {index: n for n, index in enumerate(order, 1)}
    approval = effective_approval(config, improvement, ctx.warnings)
    steps = [
        PlannedStep(
            number=number[i],
            name=improvement.steps[i].name,
            action=improvement.steps[i].action,
            scope=scopes[i].patterns,
            depends_on=sorted(number[d] for d in edges[i]),
            files=files[i],
            checks=list(validation.per_step),
            limits=config.limits_for(improvement, improvement.steps[i].timeout),
            gated=gated(approval, improvement.steps[i]),
        )
        for i in order
    ]
    planned = ExecutionPlan(
        improvement=improvement,
        base=ctx.base,
        branch=f"{config.branch_prefix}{improvement.id}",
        steps=steps,
        validation=validation,
        warnings=ctx.warnings,
    )
    return seal(planned)


def effective_approval(config: Config, improvement: Improvement, warnings: list[str]) -> Approval:
    """The stricter of the repository's and the improvement's: an improvement may tighten the
    approval policy, never loosen it (one asking for less is warned, and gets the config's)."""
    asked = improvement.approval or "none"
    if APPROVALS.index(asked) < APPROVALS.index(config.approval):
        warnings.append(
            f"approval: the improvement asks for {asked}, less than the repository's "
            f"{config.approval}, which applies (an improvement may only tighten it)"
        )
        return config.approval
    return asked


def gated(approval: Approval, step: Step) -> bool:
    """Whether the step parks for approval once applied and checked."""
    run = isinstance(step.action, RunAction)
    return step.approve or approval == "each_step" or (approval == "run_steps" and run)


@dataclass(frozen=True)
class Checked:
    """What `check` found in an improvement: problems, warnings, notes, and how the session
    names were known (empty when there was none to check)."""

    problems: list[str]
    warnings: list[str]
    notes: list[str]
    sessions_from: str


def check(
    repo: Repo, improvement: Improvement, *, base_ref: str = "HEAD", source: str | None = None
) -> Checked:
    """Every problem that planning would find, without starting a process where the noxfile
    can be read statically (a pre-commit hook must run anywhere)."""
    ctx = _checked(repo, improvement, base_ref, source, False)[0]
    how = _check_sessions(ctx, ctx.validation, _listed_lightly)
    return Checked(ctx.problems, ctx.warnings, ctx.notes, how)


def _checked(
    repo: Repo, improvement: Improvement, base_ref: str, source: str | None, generate: bool
) -> tuple[_Context, list[Scope], list[list[str] | None], list[set[int]], list[int]]:
    """Every check but the sessions'; each runs whatever the others found, so that all the
    problems are told at once. Feasibility needs an order: a cycle leaves it out. Without
    `generate`, steps left to the configured generator (a process) are not checked."""
    source = source or f"improvement {improvement.id}"
    commit, tree = repo.resolve(base_ref)
    config = parse_config(repo.read(tree, "pyproject.toml"), f"pyproject.toml at {base_ref}")
    base = Base(ref=base_ref, commit=commit, tree=tree)
    if not improvement.steps and (generate or config.generator is None):
        from tars_bot.planning import generator  # runs a process: only where steps are wanted

        improvement = generator.generate_steps(repo, improvement, config, source, tree)
    ctx = _Context(repo, improvement, source, config, base)
    if not improvement.steps:
        ctx.notes.append(f"{source}: steps: none written; the generator writes them when planned")

    branch = f"{config.branch_prefix}{improvement.id}"
    if not is_valid_branch_name(branch):
        ctx.problem("id", f"{branch!r} is not a valid branch name")
    scopes = [_resolve_scope(ctx, i, step) for i, step in enumerate(improvement.steps)]
    files = [_static_files(ctx, i, step, scopes[i]) for i, step in enumerate(improvement.steps)]
    edges = _explicit_edges(ctx)
    _add_overlap_edges(ctx, edges, files, scopes)
    order = _topological_order(ctx, edges)
    _check_limits(ctx)
    if len(order) == len(improvement.steps):
        _check_feasibility(ctx, order, scopes)
    return ctx, scopes, files, edges, order


def _resolve_scope(ctx: _Context, index: int, step: Step) -> Scope:
    if step.scope is not None:
        patterns = []
        for j, pattern in enumerate(step.scope):
            try:
                patterns.append(normalize(pattern))
            except PathProblem as e:
                ctx.problem(f"steps[{index + 1}].scope[{j + 1}]", str(e))
        return Scope(patterns)
    if not ctx.improvement.target_components:
        if isinstance(step.action, RunAction):
            ctx.warnings.append(
                f"{ctx.step_label(index)} runs a command with no scope: it may change any file"
            )
        return Scope(WHOLE_REPO)
    patterns = []
    for j, component in enumerate(ctx.improvement.target_components):
        patterns += _component_globs(ctx, f"target_components[{j + 1}]", component)
    return Scope(patterns)


def _component_globs(ctx: _Context, where: str, component: str) -> list[str]:
    if component in ctx.config.components:
        return ctx.config.components[component]
    try:
        path = normalize(component)
    except PathProblem as e:
        ctx.problem(where, str(e))
        return []
    if is_glob(path) or ctx.repo.kind(ctx.base.tree, path) is not None:
        return [path]
    known = ", ".join(sorted(ctx.config.components)) or "none configured"
    ctx.problem(
        where,
        f"{component!r} is neither a component ([tool.tars-bot.components]: {known}) "
        "nor a path in the base commit",
    )
    return []


def _static_files(ctx: _Context, index: int, step: Step, scope: Scope) -> list[str] | None:
    try:
        paths = actions.static_paths(step.action)
    except actions.ActionProblem as e:
        ctx.problem(f"steps[{index + 1}].{e.field}", str(e))
        return None
    protected = Scope(ctx.config.protected)
    for path in paths or []:
        kind = step.action.kind
        if not scope.covers(path):
            ctx.problem(
                f"steps[{index + 1}].{kind}",
                f"{path} is outside the step's scope ({', '.join(scope.patterns) or 'empty'})",
            )
        elif protected.covers(path):
            ctx.problem(
                f"steps[{index + 1}].{kind}", f"{path} is protected ([tool.tars-bot].protected)"
            )
    return paths


def _explicit_edges(ctx: _Context) -> list[set[int]]:
    """edges[i]: the steps that step i must follow, from depends_on and name uniqueness checks."""
    steps = ctx.improvement.steps
    by_name: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in by_name:
            also = by_name[step.name] + 1
            ctx.problem(f"steps[{i + 1}].name", f"duplicate step name (also steps[{also}])")
        by_name.setdefault(step.name, i)
    edges: list[set[int]] = [set() for _ in steps]
    for i, step in enumerate(steps):
        for j, ref in enumerate(step.depends_on):
            where = f"steps[{i + 1}].depends_on[{j + 1}]"
            if isinstance(ref, int):
                if not 1 <= ref <= len(steps):
                    ctx.problem(
                        where, f"no step number {ref} (steps are numbered 1 to {len(steps)})"
                    )
                    continue
                target = ref - 1
            elif ref in by_name:
                target = by_name[ref]
            else:
                ctx.problem(where, f"no step named {ref!r}")
                continue
            if target == i:
                ctx.problem(where, "a step cannot depend on itself")
            else:
                edges[i].add(target)
    return edges


def _reaches(edges: list[set[int]], start: int, goal: int) -> bool:
    """Whether `goal` must run before `start` (a path of edges from start to goal)."""
    seen, stack = {start}, [start]
    while stack:
        for before in edges[stack.pop()]:
            if before == goal:
                return True
            if before not in seen:
                seen.add(before)
                stack.append(before)
    return False


def _touches(files: list[str] | None, scope: Scope, other_files: list[str] | None) -> list[str]:
    """Paths of `other_files` that a step with `files` (or, if unknown, `scope`) may change."""
    if other_files is None:
        return []
    if files is None:
        return [path for path in other_files if scope.covers(path)]
    return sorted(set(files) & set(other_files))


def _add_overlap_edges(
    ctx: _Context, edges: list[set[int]], files: list[list[str] | None], scopes: list[Scope]
) -> None:
    """Unordered steps that touch the same file run in file order; say so."""
    for later in range(len(files)):
        for earlier in range(later):
            shared = _touches(files[earlier], scopes[earlier], files[later]) or _touches(
                files[later], scopes[later], files[earlier]
            )
            if not shared or _reaches(edges, later, earlier) or _reaches(edges, earlier, later):
                continue
            edges[later].add(earlier)
            ctx.warnings.append(
                f"{ctx.step_label(earlier)} and {ctx.step_label(later)} both touch "
                f"{', '.join(shared[:3])}; they run in file order"
            )


def _topological_order(ctx: _Context, edges: list[set[int]]) -> list[int]:
    """Kahn's algorithm, taking the earliest step in the file whenever there is a choice."""
    waiting = [len(before) for before in edges]
    followers: list[list[int]] = [[] for _ in edges]
    for i, before in enumerate(edges):
        for b in before:
            followers[b].append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for follower in followers[i]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, follower)
    if len(order) < len(edges):
        cycle = _find_cycle(edges, set(range(len(edges))) - set(order))
        names = " needs ".join(f'"{ctx.improvement.steps[i].name}"' for i in cycle)
        ctx.problem(f"steps[{cycle[0] + 1}].depends_on", f"dependency cycle: {names}")
    return order


def _find_cycle(edges: list[set[int]], stuck: set[int]) -> list[int]:
    path, node = [], min(stuck)
    while node not in path:
        path.append(node)
        node = min(b for b in edges[node] if b in stuck)
    return [*path[path.index(node) :], node]


def _check_feasibility(ctx: _Context, order: list[int], scopes: list[Scope]) -> None:
    """Apply the steps in order to the base tree in memory; `run` steps make later checks soft."""
    files = actions.TreeFiles(ctx.repo, ctx.base.tree)
    runs_before: list[int] = []
    for i in order:
        action = ctx.improvement.steps[i].action
        if isinstance(action, RunAction):
            runs_before.append(i)
            continue
        try:
            actions.apply(action, files)
        except actions.ActionProblem as e:
            run = next((r for r in runs_before if e.path and scopes[r].covers(e.path)), None)
            if run is None:
                ctx.problem(f"steps[{i + 1}].{e.field}", str(e))
            else:
                ctx.warnings.append(
                    f"{ctx.step_label(i)}: cannot check before {ctx.step_label(run)} has run: {e}"
                )
        if isinstance(action, PatchAction):
            _check_patch_size(ctx, i, action)


def _check_limits(ctx: _Context) -> None:
    """An improvement may lower the repository's limits, never raise them."""
    allowed = ctx.config.limits
    for name, value in ctx.improvement.limits.model_dump(exclude_none=True).items():
        if value > getattr(allowed, name):
            ctx.problem(
                f"limits.{name}",
                f"{value} is over the repository's limit of {getattr(allowed, name)} "
                f"([tool.tars-bot].limits.{name}); an improvement may only lower it",
            )
    for index, step in enumerate(ctx.improvement.steps):
        if step.timeout is not None and step.timeout > allowed.step_timeout:
            ctx.problem(
                f"steps[{index + 1}].timeout",
                f"{step.timeout} is over the repository's limit of {allowed.step_timeout} "
                "([tool.tars-bot].limits.step_timeout); a step may only lower it",
            )


def _check_patch_size(ctx: _Context, index: int, action: PatchAction) -> None:
    changed = sum(
        line[:1] in "+-" and not line.startswith(("+++", "---"))
        for line in action.diff.splitlines()
    )
    step = ctx.improvement.steps[index]
    limit = ctx.config.limits_for(ctx.improvement, step.timeout).max_changed_lines
    if changed > limit:
        ctx.problem(
            f"steps[{index + 1}].patch",
            f"changes {changed} lines, over the limit of {limit} (limits.max_changed_lines)",
        )
    elif changed > LARGE_PATCH_LINES:
        ctx.warnings.append(f"{ctx.step_label(index)}: large patch ({changed} changed lines)")


Sessions: TypeAlias = "NoxSessions | StaticSessions"
# how the session names of the noxfile at a tree are known: (sessions or None without a
# noxfile, how they were known); raises _Unchecked where they cannot be
SessionLister: TypeAlias = Callable[["_Context"], tuple["Sessions | None", str]]


class _Unchecked(Exception):
    """The session names cannot be known here; the reason is the message."""


def _check_sessions(ctx: _Context, validation: Validation, lister: SessionLister) -> str:
    """Whether every check names a session of the noxfile; says how the names were known."""
    checks = [
        (f"{kind}[{i}]", check)
        for kind in ("per_step", "final")
        for i, check in enumerate(getattr(validation, kind), 1)
    ]
    if not checks:
        return ""
    origin = "validation" if ctx.improvement.validation else "[tool.tars-bot].validation"
    try:
        sessions, how = lister(ctx)
    except _Unchecked as e:
        ctx.notes.append(f"{ctx.source}: session names not checked: {e}")
        return "not checked"
    for field_path, check in checks:
        where = f"{origin}.{field_path}"
        if sessions is None:
            ctx.problem(where, f"the base commit has no noxfile.py to run {check!r} from")
        elif reason := sessions.missing(check):
            ctx.problem(where, f"{reason} in noxfile.py (sessions: {sessions.describe()})")
    return how


def _listed_by_nox(ctx: _Context) -> tuple[Sessions | None, str]:
    from tars_bot.execution.sandbox import open_sandbox  # a process: only where needed
    from tars_bot.validation.validator import list_sessions

    sandbox = open_sandbox(ctx.config, ctx.repo)
    return list_sessions(ctx.repo, ctx.base.tree, sandbox), "listed by nox"


def _listed_lightly(ctx: _Context) -> tuple[Sessions | None, str]:
    """The noxfile's decorators read statically; `nox --list` in the sandbox only where they
    cannot tell and the sandbox can run here."""
    source = ctx.repo.read(ctx.base.tree, NOXFILE)
    if source is None:
        return None, "no noxfile.py"
    static = StaticSessions.read(source.decode(errors="replace"))
    if static is not None:
        return static, "read from noxfile.py statically"
    from tars_bot.execution.sandbox import SandboxUnavailable

    try:
        return _listed_by_nox(ctx)
    except SandboxUnavailable as e:
        raise _Unchecked(
            f"noxfile.py makes its sessions in a way only running it tells, and {e}"
        ) from None
