"""`tars-bot check`: light enough for a pre-commit hook (no process, no sandbox), every problem
of every file, and the static reading of noxfiles it relies on."""

from __future__ import annotations

import textwrap

import pytest

from tars_bot.planning.noxfile import declared_sessions

# -- declared_sessions: noxfiles as real projects write them ---------------------------------------


def _declared(source: str) -> list[str] | None:
    return declared_sessions(textwrap.dedent(source))


def test_plain_decorators_in_order() -> None:
    assert _declared(
        """
        import nox

        @nox.session
        def lint(session: nox.Session) -> None:
            session.run("ruff", "check")

        @nox.session(python="3.11", reuse_venv=True)
        def tests(session):
            session.install("-e", ".")
        """
    ) == ["lint", "tests"]


def test_name_alias_and_imported_decorator() -> None:
    assert _declared(
        """
        import nox as n
        from nox import session

        @n.session(name="type-check", tags=["static"])
        def mypy(session):
            pass

        @session(py=["3.10", "3.11"])
        def tests(session):
            session.run("pytest")
        """
    ) == ["type-check", "tests"]


def test_parametrized_python_gives_base_names() -> None:
    assert _declared(
        """
        import nox

        PYTHONS = ["3.10", "3.11", "3.12"]

        @nox.session(python=PYTHONS)
        @nox.parametrize("django", ["4.2", "5.0"])
        def tests(session, django):
            session.install(f"django=={django}")
        """
    ) == ["tests"]


def test_session_applied_as_a_call() -> None:
    assert _declared(
        """
        import nox

        def _docs(session):
            pass

        nox.session(_docs, name="docs")
        nox.session(name="build")(_docs)
        """
    ) == ["docs", "build"]


@pytest.mark.parametrize(
    "source",
    [
        # sessions made in a loop
        """
        import nox
        for version in ["3.10", "3.11"]:
            @nox.session(name=f"tests-{version}")
            def tests(session):
                pass
        """,
        # a computed name
        """
        import nox
        import os
        @nox.session(name=os.environ["SESSION"])
        def tests(session):
            pass
        """,
        # exec
        """
        import nox
        exec("@nox.session\\ndef tests(session): pass")
        """,
        # a decorator kept under another name
        """
        import nox
        py311 = nox.session(python="3.11")
        @py311
        def tests(session):
            pass
        """,
        # sessions from another module
        """
        from tasks.sessions import *
        """,
        # made inside a function
        """
        from nox import session
        def make(name):
            session(lambda s: None, name=name)
        make("tests")
        """,
        "def broken(:\n",
    ],
    ids=["loop", "computed-name", "exec", "stored-decorator", "star-import", "factory", "syntax"],
)
def test_what_only_running_tells_gives_none(source: str) -> None:
    assert _declared(source) is None


def test_session_argument_named_like_the_decorator_is_not_dynamic() -> None:
    assert _declared(
        """
        from nox import session

        @session
        def tests(session):
            session.install(".")
            session.run("pytest", *session.posargs)
        """
    ) == ["tests"]
