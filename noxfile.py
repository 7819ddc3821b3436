"""Development sessions: `nox -s lint tests`."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with coverage."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov=tars_bot", "--cov-report=term", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
