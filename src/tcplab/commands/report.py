"""``tcplab report RESULTS.json``: (re)write REPORT.md and report.html from a results file."""

from __future__ import annotations

import argparse
from pathlib import Path

from tcplab import report
from tcplab.errors import EXIT_OK, make_dir

NAME = "report"
HELP = "write REPORT.md and report.html (sequence diagrams) from a results.json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS.json", help="a results file of `tcplab run`")
    parser.add_argument("--out", metavar="DIR",
                        help="write the report into DIR (default: next to RESULTS.json)")


def execute(args: argparse.Namespace) -> int:
    path = Path(args.results)
    if path.is_dir():
        path = path / "results.json"
    results = report.load(path)  # a UsageError if it is missing or not a results file
    out = Path(args.out) if args.out else path.parent
    make_dir(out, "the report directory")
    md, html = report.write(results, out)
    print(f"report: {md} and {html}")
    return EXIT_OK
