"""``tcplab report RESULTS.json``: (re)write REPORT.md and report.html from a results file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tcplab import report
from tcplab.errors import EXIT_OK, UsageError

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
    if not path.is_file():
        raise UsageError(f"{path} does not exist: pass a results.json written by `tcplab run`")
    try:
        results = report.load(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a results file ({exc})") from None
    if not isinstance(results, dict) or "scenarios" not in results:
        raise UsageError(f"{path} is not a results file of `tcplab run` (no scenarios)")
    out = Path(args.out) if args.out else path.parent
    out.mkdir(parents=True, exist_ok=True)
    md, html = report.write(results, out)
    print(f"report: {md} and {html}")
    return EXIT_OK
