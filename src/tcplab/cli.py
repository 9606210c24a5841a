"""The ``tcplab`` command: one sub-command per module of ``tcplab.commands``.

Every error a person can cause (unknown scenario, bad option, missing privilege) is one
plain line on stderr and a documented exit code (``tcplab.errors``), never a traceback.

Only the sub-command that runs is imported (issue 14, "a fast start"): together they pull in
trio, psutil and most of tcplab, over a hundred milliseconds that ``tcplab --version`` or a
one-shot ``tcplab watch --once`` should not pay. So the top-level help comes from ``COMMANDS``
below, and a sub-command's module is imported, and its options added, only when argparse
hands it the rest of the command line (``_CommandParser``), which ``--help`` of that
sub-command goes through too: every help text stays complete.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tcplab import __version__
from tcplab.errors import (
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    TcplabError,
    first_leaf,
)

#: Sub-command name -> (its module, its HELP), in the order ``tcplab --help`` lists them. Each
#: module has NAME, HELP, configure(parser) and execute(args) -> exit code; its HELP is
#: repeated here so that listing the commands imports none of them (tests/test_cli.py checks
#: that the two agree).
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("tcplab.commands.list_", "list the scenarios: id, claims, requirements, title"),
    "run": ("tcplab.commands.run",
            "run scenarios (all but slow ones by default) and write results/<run>/results.json"),
    "report": ("tcplab.commands.report",
               "write REPORT.md and report.html (sequence diagrams) from a results.json "
               "(default: the newest run), or print one format"),
    "claims": ("tcplab.commands.claims",
               "the claims ledger: each claim's verdict in a run (newest "
               "results/*/results.json by default)"),
    "doctor": ("tcplab.commands.doctor",
               "audit this host's TCP tunables (read only): value, what it really does, advice"),
    "watch": ("tcplab.commands.watch",
              "sockets per state and per owning process, refreshed in place (CLOSE_WAIT "
              "growth marked)"),
    "states": ("tcplab.commands.states",
               "each TCP state: the scenario holding it, how, and what the newest results "
               "observed"),
    "try": ("tcplab.commands.try_",
            "measure what net.* settings (KEY=VALUE or a sysctl.conf) change, in private "
            "namespaces"),
    "export": ("tcplab.commands.export",
               "serve sockets per state and per owning process as Prometheus metrics "
               "(OpenMetrics, 127.0.0.1 by default)"),
}

EPILOG = """exit codes: 0 all passed (skips included, unless run --strict), 1 a scenario failed
(or, with run --strict, was skipped), 2 usage error,
3 a needed privilege or kernel feature is missing, 130 interrupted"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """argparse's errors, as one line and exit code 2."""
        print(f"tcplab: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


class _CommandParser(_Parser):
    """A sub-command's parser, filled in (module imported, ``configure`` called) the first
    time it parses: argparse calls ``parse_known_args`` on the chosen sub-command only."""

    module_name = ""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.load()
        return super().parse_known_args(args, namespace)

    def load(self) -> None:
        """Import the sub-command's module and add its options (once)."""
        if self.module_name:
            module = importlib.import_module(self.module_name)
            self.module_name = ""
            module.configure(self)
            self.set_defaults(execute=module.execute, command_parser=self)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tcplab", description="TCP socket lifecycles on a real Linux kernel.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tcplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.module_name = module_name
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
