"""``tcplab list``: the scenarios, their claims and what they need."""

from __future__ import annotations

import argparse
import json

from tcplab import catalog, table

NAME = "list"
HELP = "list the scenarios: id, claims, requirements, title"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenarios", metavar="DIR", help="load scenarios from DIR")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="only scenarios tagged TAG (repeatable; e.g. realworld)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def execute(args: argparse.Namespace) -> int:
    scenarios = catalog.tagged(catalog.discover(args.scenarios), args.tag)
    if args.json:
        print(json.dumps([{"id": s.id, "title": s.title, "claims": list(s.claims),
                           "requires": s.requires_all(), "slow": s.slow, "tags": list(s.tags),
                           "sysctls": dict(s.sysctls), "from": catalog.origin(s),
                           "path": str(s.path)} for s in scenarios], indent=1))
        return 0
    rows = [(s.id, " ".join(s.claims), ", ".join(s.requires_all()) or "-", catalog.origin(s),
             "".join(f"{t}; " for t in (*s.tags, *(("slow",) if s.slow else ()))) + s.title)
            for s in scenarios]
    print(table.render(("id", "claims", "needs", "from", "title"), rows))
    return 0
