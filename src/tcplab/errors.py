"""Errors the command line reports in one plain line, and the exit codes it documents."""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING`` and no runtime pathlib: every command imports this
# module first, before it knows what it will need (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

EXIT_OK = 0  # every selected scenario passed (or was skipped with a reason, unless --strict)
EXIT_FAILED = 1  # a scenario failed (the kernel did not do what it asserts, or it crashed),
#                 or was skipped under `tcplab run --strict`
EXIT_USAGE = 2  # unknown scenario, bad option or value
EXIT_UNAVAILABLE = 3  # a needed privilege or kernel feature is missing for the whole command
EXIT_INTERRUPTED = 130  # Ctrl-C


class TcplabError(Exception):
    """An error for people: ``str()`` is the whole message, ``exit_code`` what the CLI returns."""

    exit_code = EXIT_FAILED


class UsageError(TcplabError):
    exit_code = EXIT_USAGE


class Unavailable(TcplabError):
    exit_code = EXIT_UNAVAILABLE


def first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups from nurseries: the one a
    person should be told about, where trio wraps it."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def make_dir(path: Path, what: str) -> Path:
    """``mkdir -p path`` for a directory a person named (``--results``, ``--out``): a path
    that cannot be a directory (a file in the way, a full disk) is a ``UsageError`` line,
    not a traceback. A permission error goes on as it is: the CLI reports it (exit 3)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise
    except OSError as exc:
        raise UsageError(f"cannot make {what} {path}: {exc.strerror}") from None
    return path
