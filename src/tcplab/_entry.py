"""The console script's entry point, kept free of heavy imports.

Loading the command line, and then the one sub-command it runs (``tcplab.cli`` imports
only that one, with trio or psutil if it needs them), takes from a few to a hundred-odd
milliseconds; a Ctrl-C in that window must still end with one line and exit code 130, not a
traceback, so both happen inside the guard (the sub-command is imported while its arguments
are parsed).

An interrupted run leaves through ``os._exit``: CPython marks a KeyboardInterrupt raised
inside string ``exec`` (dataclasses build their methods that way while modules import) as
unhandled even after it was caught, and ``python -m`` then kills itself with SIGINT at exit
instead of returning 130. Everything is flushed first; nothing else is left to run.
"""

from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130


def _leave_interrupted() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def main() -> None:
    try:
        from tcplab.cli import main as cli_main

        code = cli_main()
    except KeyboardInterrupt:  # before cli.main's own handling: loading, parsing arguments
        print("tcplab: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        _leave_interrupted()
    raise SystemExit(code)
