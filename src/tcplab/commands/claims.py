"""``tcplab claims``: the ledger of every claim for one results file.

With no RESULTS.json it reads the newest run under ``results/`` (``tcplab.results.newest``:
the rule every command shares). With no results file at
all it still prints the ledger — every claim "not run", "no scenario yet" or "not
reproducible here" — so the coverage can be read before anything ran, then says on stderr
that nothing was measured and exits 3 (``EXIT_UNAVAILABLE``): a script asking for verdicts
did not get any.

The ledger is rebuilt from the run's scenario results and the current scenarios and
claims, so a claim or scenario added since the run shows up; the verdicts themselves are
only ever those measured in that run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tcplab import catalog, ledger, table
from tcplab.errors import EXIT_OK, EXIT_UNAVAILABLE, UsageError
from tcplab.results import Run, load, newest
from tcplab.scenario import Scenario

NAME = "claims"
HELP = "the claims ledger: each claim's verdict in a run (newest results/*/results.json by default)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_file", nargs="?", metavar="RESULTS.json",
                        help="a results file of `tcplab run` (default: the newest under --results)")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="where to look for the newest run (default: %(default)s)")
    parser.add_argument("--scenarios", metavar="DIR", help="load scenarios from DIR")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON for scripts")
    out.add_argument("--markdown", action="store_true",
                     help="print the Markdown table the README carries (claim, articles, verdict)")


def known_scenarios(explicit: str | None) -> dict[str, Scenario]:
    """The scenario catalog; outside a checkout with none bundled, an empty one (the results
    file alone still says what ran), unless ``--scenarios`` named a directory."""
    try:
        return catalog.discover(explicit)
    except UsageError as exc:
        if explicit or isinstance(exc, catalog.UntrustedDirectory):
            raise
        return {}


def execute(args: argparse.Namespace) -> int:
    path = Path(args.results_file) if args.results_file else newest(Path(args.results))
    run: Run | None = load(path) if path is not None else None
    results = run.data if run is not None else None
    rows = ledger.build(results, known_scenarios(args.scenarios))
    if args.json:
        print(json.dumps({"results": str(run.path) if run else None,
                          "run_id": run.run_id if run else None,
                          "tally": ledger.tally(rows), "ledger": ledger.to_json(rows)}, indent=1))
    elif args.markdown:
        print(markdown(rows))
    else:
        print(render(rows))
        where = f"{run.path} (run {run.run_id})" if run else "no results file"
        counts = ", ".join(f"{n} {k}" for k, n in ledger.tally(rows).items())
        print(f"\n{len(rows)} claims ({counts}); from {where}")
    if results is None:
        print(f"tcplab: no results under {args.results}/: nothing measured yet, "
              "run `tcplab run` first", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


def render(rows: list[ledger.Row]) -> str:
    """The ledger as a terminal table: claim, verdict (or status), scenarios, evidence."""
    lines = [(r.claim.id, r.verdict or r.status, ", ".join(r.scenarios) or "-", r.evidence)
             for r in rows]
    return table.render(("claim", "verdict", "scenarios", "evidence"), lines)


def markdown(rows: list[ledger.Row]) -> str:
    """The ledger as the README's Markdown table: each claim with the articles (or the kernel
    document, or the library's tracker issues) that make it, our wording, the verdict (or why there is none) and the scenarios that judged it."""
    out = ["| claim | articles | what the articles say (our words) | verdict | scenario |",
           "|---|---|---|---|---|"]
    for r in rows:
        verdict = f"**{r.verdict}**" if r.verdict else r.status
        scenarios = ", ".join(f"`{s}`" for s in r.scenarios) or "-"
        out.append(f"| {r.claim.id} | {r.claim.cited} | {r.claim.statement} | {verdict} | {scenarios} |")
    return "\n".join(out)
