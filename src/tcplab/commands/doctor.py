"""``tcplab doctor``: a read-only audit of this host's TCP tunables and sockets.

For each tunable the articles mention: its value here, what it really does (from the
newest results file's measured verdicts when there is one, else from the kernel
documentation), and advice. Then the host's TCP sockets per state. Always exits 0: it
reports, it never fails a build; ``--json`` is for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tcplab import doctor, ledger, table
from tcplab.commands.claims import known_scenarios
from tcplab.errors import EXIT_OK, UsageError
from tcplab.results import load, newest

NAME = "doctor"
HELP = "audit this host's TCP tunables (read only): value, what it really does, advice"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="take measured verdicts from the newest DIR/*/results.json "
                             "(default: %(default)s)")
    parser.add_argument("--scenarios", metavar="DIR", help="load scenarios from DIR")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _ledger_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """The newest run's ledger rows (rebuilt, so current claims apply), its run id and path.

    A results file that can't be read is reported on stderr and ignored: the audit of the
    host does not depend on it.
    """
    path = newest(Path(args.results))
    if path is None:
        return [], None, None
    try:
        run = load(path)
    except UsageError as exc:
        print(f"tcplab: ignoring the newest results file: {exc}", file=sys.stderr)
        return [], None, None
    rows = ledger.to_json(ledger.build(run.data, known_scenarios(args.scenarios)))
    return rows, run.run_id, str(run.path)


def execute(args: argparse.Namespace) -> int:
    rows, run_id, path = _ledger_rows(args)
    findings = doctor.examine_all(rows, run_id)
    counts = doctor.socket_counts()
    hints = doctor.socket_hints(counts)
    if args.json:
        print(json.dumps({"results": path, "run_id": run_id,
                          "tunables": [f.to_json() for f in findings],
                          "sockets": counts, "hints": hints}, indent=1))
        return EXIT_OK
    for f in findings:
        value = f.value if f.value is not None else "(absent)"
        print(f"{f.name} = {value}")
        print(f"  does:   {f.does}")
        print(f"  source: {f.basis}")
        if f.advice:
            print(f"  advice: {f.advice}")
        print()
    print("TCP sockets on this host (this network namespace), per state:")
    print(table.render(("state", "count"), [(s, n) for s, n in counts.items() if n]
                       or [("(none)", 0)]))
    for hint in hints:
        print(f"- {hint}")
    if path is None:
        print("\nno results file yet: facts come from the kernel documentation; "
              "`tcplab run` measures them on this kernel")
    return EXIT_OK
