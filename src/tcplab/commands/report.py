"""``tcplab report [--format F] [RESULTS.json]``: a run's report, from its results file.

Without ``--format`` it (re)writes REPORT.md and report.html next to the results file (or
into ``--out``), as ``tcplab run`` does. With ``--format text|markdown|html|json`` it prints
that one rendering to stdout. With no RESULTS.json it reports on the newest run under
``--results`` (``tcplab.results``: the rule ``claims``, ``states`` and ``doctor`` share). A
file that is not a results file of ``tcplab run`` (missing, not JSON, JSON of another shape)
is one line on stderr and exit 2. It never writes the CI job summary: ``tcplab run`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcplab import report
from tcplab.errors import EXIT_OK, UsageError, make_dir
from tcplab.results import load, newest

NAME = "report"
HELP = ("write REPORT.md and report.html (sequence diagrams) from a results.json (default: the "
        "newest run), or print one format")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_file", nargs="?", metavar="RESULTS.json",
                        help="a results file of `tcplab run` (default: the newest under --results)")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="where to look for the newest run (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DIR",
                       help="write REPORT.md and report.html into DIR (default: next to "
                            "RESULTS.json)")
    where.add_argument("--format", choices=sorted(report.FORMATS), metavar="FORMAT",
                       help="print the report to stdout as one of: "
                            + ", ".join(sorted(report.FORMATS)))


def execute(args: argparse.Namespace) -> int:
    path = Path(args.results_file) if args.results_file else newest(Path(args.results))
    if path is None:
        raise UsageError(f"no run under {args.results}/: run `tcplab run` first or pass RESULTS.json")
    run = load(path)  # a UsageError if it is missing or not a results file
    try:
        if args.format:
            sys.stdout.write(report.render(run, args.format))
            return EXIT_OK
        out = Path(args.out) if args.out else run.path.parent
        make_dir(out, "the report directory")
        md, html = report.write(run, out)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # a timeline event the loader let through but a diagram cannot read: one line
        raise UsageError(f"{run.path}: not a results file of `tcplab run` (unexpected "
                         f"{type(exc).__name__}: {exc})") from None
    print(f"report of run {run.run_id}: {md} and {html}")
    return EXIT_OK
