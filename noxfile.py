"""Sessions: tests, scenarios, lint, bench. ``nox -s NAME``; ``nox`` alone runs tests and lint."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (pytest, pytest-trio) against real sockets."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def scenarios(session: nox.Session) -> None:
    """Every scenario but the slow ones; results (JSON, report) into results/<run>/."""
    session.install(".")
    session.run("tcplab", "run", "--results", "results", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy (strict) over the package, scenarios, tests and this file."""
    session.install("-e", ".[test,lint]", "nox")
    session.run("ruff", "check", "src", "scenarios", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Observer speed against psutil and ss, with 0, 2,000 and 20,000 other sockets."""
    session.install("-e", ".")
    session.run("python", "-m", "tests.benchmarks", *session.posargs)
