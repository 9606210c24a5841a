"""``tcplab run``: run scenarios concurrently, show progress, print a table, write results.

Progress goes to stderr (``tcplab.progress``: a status line redrawn in place on a terminal,
whole lines with a heartbeat in a log). ``--strict`` makes skipped runs fail the command, for
CI, where a skip usually means a missing privilege rather than a kernel that disagrees.

Beside the results file it writes REPORT.md and report.html; in a GitHub Actions job it also
appends the run's summary and claims tables to the job summary ($GITHUB_STEP_SUMMARY), by an
explicit call here (``report.write_step_summary``), not as a side effect of the report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio

from tcplab import catalog, progress, report, results, runner, table
from tcplab.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from tcplab.kernel import trace
from tcplab.scenario import ScenarioResult
from tcplab.table import plural

NAME = "run"
HELP = "run scenarios (all but slow ones by default) and write results/<run>/results.json"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="scenario ids (see `tcplab list`)")
    parser.add_argument("--repeat", type=_positive, default=1, metavar="N", help="run each N times")
    parser.add_argument("--jobs", type=_positive, default=runner.default_jobs(), metavar="N",
                        help="runs at once (default: %(default)s)")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="write DIR/<run>/results.json (default: %(default)s)")
    parser.add_argument("--slow", action="store_true", help="include slow scenarios (real timers)")
    parser.add_argument("--all", action="store_true", dest="everything",
                        help="every scenario: slow and opt-in (realworld) ones included")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="run the scenarios tagged TAG (repeatable), e.g. realworld, whose "
                             "scenarios a run without ids or tags leaves out")
    parser.add_argument("--scenarios", metavar="DIR", help="load scenarios from DIR")
    parser.add_argument("--strict", action="store_true",
                        help="count skipped runs as failures (exit 1), listed with their reasons")


def skipped_lines(runs: list[ScenarioResult]) -> list[str]:
    """One line per skipped scenario, with its reason (and how many runs, if repeated): what
    ``--strict`` turns into failures, so a CI log says what to fix (root? a kernel feature?)."""
    reasons: dict[str, list[str]] = {}
    for r in runs:
        if r.status == "skipped":
            reasons.setdefault(r.id, []).append(r.reason.splitlines()[0] if r.reason else "")
    lines = []
    for sid, why in reasons.items():
        count = f" ({plural(len(why), 'run')})" if len(why) > 1 else ""
        lines.append(f"  {sid}{count}: {why[0] or 'no reason given'}")
    return lines


def execute(args: argparse.Namespace) -> int:
    known = catalog.discover(args.scenarios)
    scenarios = catalog.select(known, args.ids, include_slow=args.slow or args.everything,
                               tags=args.tag, include_opt_in=args.everything)
    if not scenarios:
        raise UsageError("no scenario selected")
    made = runner.RunReport(runner.new_run_id(), time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              catalog=known)
    directory = runner.results_dir(made, Path(args.results))
    started = time.monotonic()
    interrupted = False
    total = len(scenarios) * args.repeat
    display = progress.for_stream(total, repeat=args.repeat).start()
    try:
        made.results = trio.run(
            lambda: runner.run_many(scenarios, repeat=args.repeat, jobs=args.jobs,
                                    progress=display)
        )
    except runner.Interrupted as stop:
        made.results, interrupted = stop.results, True
    finally:
        display.close()
        trace.sweep_quietly()  # instances of runs that were SIGKILLed (a timeout, a dead parent)
    made.wall_time = time.monotonic() - started
    path = runner.write_results(made, directory)
    run = results.load(path)  # the file just written, read as every command reads it
    report.write(run, directory)
    report.write_step_summary(run)
    if interrupted:  # the runs that finished are kept; the table is not worth a partial run
        print(f"tcplab: interrupted; {len(made.results)} of {plural(total, 'run')} finished, "
              f"kept in {path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    rows = [
        (row["id"], f"{row['passed']}/{row['runs']}", row["failed"] or "", row["skipped"] or "",
         "" if row["median_s"] is None else f"{row['median_s']:.2f}",
         " ".join(f"{c}={v}" for c, v in row["verdicts"].items()) or row["reason"])
        for row in runner.summarize(made.results)
    ]
    print(table.render(("scenario", "passed", "failed", "skipped", "median s", "verdicts"), rows))
    failed = [r for r in made.results if r.status == "failed"]
    for r in failed[:5]:
        print(f"\n--- {r.id} failed ---\n{r.reason}", file=sys.stderr)
        if r.crash_traceback:  # a crash: the traceback too, not only inside results.json
            print(r.crash_traceback, file=sys.stderr, end="")
    skipped = skipped_lines(made.results) if args.strict else []
    if skipped:
        count = sum(r.status == "skipped" for r in made.results)
        print(f"\n--- {plural(count, 'skipped run')} (failures with --strict) ---",
              *skipped, sep="\n", file=sys.stderr)
    print(f"\n{plural(len(made.results), 'run')} in {made.wall_time:.1f} s; results: {path}")
    print(f"report: {directory / 'REPORT.md'} and {directory / 'report.html'}")
    return EXIT_FAILED if failed or skipped else EXIT_OK
