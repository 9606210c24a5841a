"""The ``tcplab`` command: one sub-command per module of ``tcplab.commands``.

Every error a person can cause (unknown scenario, bad option, missing privilege) is one
plain line on stderr and a documented exit code (``tcplab.errors``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from tcplab import __version__
from tcplab.commands import claims, doctor, list_, report, run, states, try_, watch
from tcplab.errors import (
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    TcplabError,
    first_leaf,
)

#: Each module has NAME, HELP, configure(parser) and execute(args) -> exit code.
COMMANDS: tuple[ModuleType, ...] = (list_, run, report, claims, doctor, watch, states, try_)

EPILOG = """exit codes: 0 all passed (skips included, unless run --strict), 1 a scenario failed
(or, with run --strict, was skipped), 2 usage error,
3 a needed privilege or kernel feature is missing, 130 interrupted"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """argparse's errors, as one line and exit code 2."""
        print(f"tcplab: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tcplab", description="TCP socket lifecycles on a real Linux kernel.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tcplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(execute=module.execute, command_parser=command)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parse_args``, except that an unknown option is reported by the sub-command it was
    given to (``see `tcplab run --help```), not by the top-level parser, which would point
    at ``tcplab --help``, where that sub-command's options are not listed."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        try:
            code: int = args.execute(args)
        except BaseExceptionGroup as group:  # from a nursery: report its first real error
            raise first_leaf(group) from None
    except TcplabError as exc:
        print(f"tcplab: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tcplab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PermissionError as exc:
        print(f"tcplab: permission denied: {exc.filename or exc}: run as a user who may read "
              "it (or as root)", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except BrokenPipeError:
        return 0
    return code
