"""The sessions a noxfile declares, read with `ast` without running it: no process, no sandbox.

Only what can be read for certain is read. A noxfile that makes sessions in a way this reader
does not follow (in a loop or a function, under a computed name, through `exec`, from another
module) gives None, and the caller asks the real `nox --list` instead.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

NOXFILE = "noxfile.py"

# calls through which a noxfile may register sessions this reader cannot see
_DYNAMIC_CALLS = frozenset({"exec", "eval", "compile", "__import__", "globals", "setattr"})


@dataclass(frozen=True)
class Declared:
    """One session function: its base name, the pythons it runs on (each making a session
    `name-python`), its tags, and whether `@nox.parametrize` makes `name(arg=...)` sessions."""

    name: str
    pythons: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    parametrized: bool = False

    def long_names(self) -> list[str]:
        return [f"{self.name}-{python}" for python in self.pythons]


@dataclass(frozen=True)
class StaticSessions:
    """What `nox --list` would select, as read from the source: answers like the listed
    sessions (`missing`, `describe`)."""

    declared: tuple[Declared, ...]

    @classmethod
    def read(cls, source: str) -> StaticSessions | None:
        found = read_sessions(source)
        return None if found is None else cls(tuple(found))

    def missing(self, check: str) -> str | None:
        """Why `check` (a session name or tag:NAME) selects nothing, or None when it selects."""
        if check.startswith("tag:"):
            tag = check.removeprefix("tag:")
            found = any(tag in d.tags for d in self.declared)
            return None if found else f"no nox session is tagged {tag!r}"
        for d in self.declared:
            if check == d.name or check in d.long_names():
                return None
            if d.parametrized and check.startswith(f"{d.name}("):  # nox's `name(arg=...)`
                return None
        return f"no nox session named {check!r}"

    def describe(self) -> str:
        names = {n for d in self.declared for n in (d.name, *d.long_names())}
        return ", ".join(sorted(names)) or "none"


class _Unreadable(Exception):
    """The noxfile makes sessions in a way that only running it would tell."""


def declared_sessions(source: str) -> list[str] | None:
    """The base session names (`tests`, not `tests-3.11`) that `source` declares, in order; None
    when they cannot be known without running it."""
    found = read_sessions(source)
    return None if found is None else [d.name for d in found]


def read_sessions(source: str) -> list[Declared] | None:
    """Every session function `source` declares, or None where only running it would tell."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    try:
        return _Reader(tree).sessions()
    except _Unreadable:
        return None


class _Reader:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.modules: set[str] = set()  # names bound to the nox module
        self.session_names: set[str] = set()  # names bound to nox.session
        self.parametrize_names: set[str] = set()  # names bound to nox.parametrize
        self.constants: dict[str, object] = {}  # module-level NAME = literal

    def sessions(self) -> list[Declared]:
        self._bind_names()
        found: dict[str, Declared] = {}
        for statement in self.tree.body:
            for declared in self._declared_by(statement):
                found[declared.name] = declared
        self._refuse_hidden_sessions()
        return list(found.values())

    def _bind_names(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "nox":
                        self.modules.add(alias.asname or "nox")
            elif isinstance(node, ast.ImportFrom) and node.module == "nox":
                for alias in node.names:
                    if alias.name == "*":
                        raise _Unreadable
                    if alias.name == "session":
                        self.session_names.add(alias.asname or "session")
                    elif alias.name == "parametrize":
                        self.parametrize_names.add(alias.asname or "parametrize")
            elif isinstance(node, ast.ImportFrom) and node.names[0].name == "*":
                raise _Unreadable  # another module's sessions would be registered unseen
        for statement in self.tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    with contextlib.suppress(ValueError):  # not a literal: never a name or python
                        self.constants[target.id] = ast.literal_eval(statement.value)

    def _is_session(self, node: ast.expr) -> bool:
        """Whether `node` names nox.session (`nox.session`, `n.session`, `session`)."""
        if isinstance(node, ast.Name):
            return node.id in self.session_names
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "session"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.modules
        )

    def _is_parametrize(self, node: ast.expr) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(target, ast.Name):
            return target.id in self.parametrize_names
        return (
            isinstance(target, ast.Attribute)
            and target.attr == "parametrize"
            and isinstance(target.value, ast.Name)
            and target.value.id in self.modules
        )

    def _declared_by(self, statement: ast.stmt) -> Iterator[Declared]:
        if isinstance(statement, ast.FunctionDef):
            parametrized = any(self._is_parametrize(d) for d in statement.decorator_list)
            for decorator in statement.decorator_list:
                if self._is_session(decorator):
                    yield Declared(statement.name, parametrized=parametrized)
                elif isinstance(decorator, ast.Call) and self._is_session(decorator.func):
                    yield self._from_call(decorator, statement.name, parametrized)
        elif isinstance(statement, ast.Expr | ast.Assign):
            yield from self._declared_by_call(statement.value)

    def _declared_by_call(self, value: ast.expr) -> Iterator[Declared]:
        """`nox.session(func, ...)` and `nox.session(...)(func)` at module level."""
        if not isinstance(value, ast.Call):
            return
        if self._is_session(value.func):
            if not value.args:  # a decorator kept under a name: followed no further
                raise _Unreadable
            yield self._from_call(value, self._function_name(value.args[0]), False)
        elif isinstance(value.func, ast.Call) and self._is_session(value.func.func):
            if len(value.args) != 1:
                raise _Unreadable
            yield self._from_call(value.func, self._function_name(value.args[0]), False)

    def _function_name(self, node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            return node.id
        raise _Unreadable

    def _from_call(self, call: ast.Call, function: str, parametrized: bool) -> Declared:
        keywords = {k.arg: k.value for k in call.keywords}
        if None in keywords:  # **options
            raise _Unreadable
        name = self._literal(keywords["name"]) if "name" in keywords else function
        python = keywords.get("python", keywords.get("py"))
        pythons = self._literal(python) if python is not None else None
        backend = keywords.get("venv_backend")
        if backend is not None and self._literal(backend) == "none":
            pythons = None  # nox ignores the pythons of a session that has no environment
        tags = self._literal(keywords["tags"]) if "tags" in keywords else []
        if not isinstance(name, str) or not isinstance(tags, list | tuple):
            raise _Unreadable
        return Declared(name, _python_names(pythons), tuple(str(t) for t in tags), parametrized)

    def _literal(self, node: ast.expr) -> object:
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise _Unreadable from None

    def _refuse_hidden_sessions(self) -> None:
        """nox.session used anywhere but at module level (in a loop, a function, a class), or
        calls that could register sessions: only running the noxfile would tell."""
        top_level = {id(d) for s in self.tree.body for d in _session_sites(s)}
        for node in ast.walk(self.tree):
            if _calls_dynamic(node):
                raise _Unreadable
            for use in _callees(node):
                if self._is_session(use) and id(use) not in top_level:
                    raise _Unreadable
            # `nox.session` kept under another name, passed, or stored
            stored = isinstance(node, ast.Attribute) and self._is_session(node)
            if stored and id(node) not in top_level:
                raise _Unreadable


def _calls_dynamic(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _DYNAMIC_CALLS
    )


def _callees(node: ast.AST) -> Iterator[ast.expr]:
    """What `node` calls or decorates with: where a bare `session` name means nox's (a session
    function's own `session` argument is only ever an attribute's owner)."""
    if isinstance(node, ast.Call):
        yield node.func
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield from (d for d in node.decorator_list if not isinstance(d, ast.Call))


def _session_sites(statement: ast.stmt) -> Iterator[ast.expr]:
    """The expressions naming nox.session that a top-level statement may hold and this reader
    follows: decorators, and the callee of a module-level call."""
    if isinstance(statement, ast.FunctionDef):
        for decorator in statement.decorator_list:
            yield decorator.func if isinstance(decorator, ast.Call) else decorator
    elif isinstance(statement, ast.Expr | ast.Assign) and isinstance(statement.value, ast.Call):
        call = statement.value
        yield call.func.func if isinstance(call.func, ast.Call) else call.func


def _python_names(pythons: object) -> tuple[str, ...]:
    """The `-python` suffixes nox gives: one per version of a list, one for a single version."""
    if pythons is None or pythons is False or pythons is True:
        return ()
    if isinstance(pythons, str | float | int):
        return (str(pythons),)
    if isinstance(pythons, list | tuple | set):
        return tuple(dict.fromkeys(str(p) for p in pythons))
    raise _Unreadable
