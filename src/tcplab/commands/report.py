"""``tcplab report [RESULTS.json]``: (re)write REPORT.md and report.html from a results file.

With no RESULTS.json it reports on the newest run under ``--results`` (``tcplab.results``:
the rule ``claims``, ``states`` and ``doctor`` share). A file that is not a results file of
``tcplab run`` (missing, not JSON, JSON of another shape) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tcplab import report
from tcplab.errors import EXIT_OK, UsageError, make_dir
from tcplab.results import load, newest

NAME = "report"
HELP = "write REPORT.md and report.html (sequence diagrams) from a results.json (default: the newest run)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_file", nargs="?", metavar="RESULTS.json",
                        help="a results file of `tcplab run` (default: the newest under --results)")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="where to look for the newest run (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR",
                        help="write the report into DIR (default: next to RESULTS.json)")


def execute(args: argparse.Namespace) -> int:
    path = Path(args.results_file) if args.results_file else newest(Path(args.results))
    if path is None:
        raise UsageError(f"no run under {args.results}/: run `tcplab run` first or pass RESULTS.json")
    run = load(path)  # a UsageError if it is missing or not a results file
    out = Path(args.out) if args.out else run.path.parent
    make_dir(out, "the report directory")
    try:
        md, html = report.write(dict(run.data), out)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # valid JSON that the loader let through but the report cannot read: one line
        raise UsageError(f"{run.path}: not a results file of `tcplab run` (unexpected "
                         f"{type(exc).__name__}: {exc})") from None
    print(f"report of run {run.run_id}: {md} and {html}")
    return EXIT_OK
