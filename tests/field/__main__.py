"""``python -m tests.field``: install the suites, run them without and with the check, table.

``nox -s plugin-field`` runs this; options after ``--`` reach it::

    nox -s plugin-field                          # 3 runs per mode of every suite
    nox -s plugin-field -- --runs 1 --suites trio
    nox -s plugin-field -- --suites anyio -k sockets   # passed on to the suite's pytest
    nox -s plugin-field -- --table-only          # the table again from results/field/runs

Results: ``results/field/field.md`` (the table printed, then every flagged test) and
``field.json`` (the table, every flagged socket classified, the versions installed),
``results/field/runs/`` (each run's record and log).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .prepare import prepare
from .runs import alternate
from .suites import AIOHTTP_FILES, SUITES
from .table import Run, render_markdown, summarize, to_json

REPO = Path(__file__).resolve().parents[2]


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m tests.field", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--suites", default=",".join(SUITES),
                        help=f"comma-separated, of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--work", type=Path, default=REPO / ".nox" / "plugin-field" / "tmp",
                        help="sdists, virtualenvs and run directories (reused)")
    parser.add_argument("--results", type=Path, default=REPO / "results" / "field")
    parser.add_argument("--table-only", action="store_true",
                        help="no runs: the table again from the records of the last session")
    return parser.parse_known_args(argv)


def _table(records: list[dict[str, Any]], meta: dict[str, Any], results: Path) -> str:
    names = [name for name in SUITES if any(r["suite"] == name for r in records)]
    summaries = [summarize(name, SUITES[name].title,
                           [Run.from_record(r) for r in records if r["suite"] == name])
                 for name in names]
    heading = (f"tcplab field run, {meta['date']}: {meta['versions']}; tcplab {meta['tcplab']}; "
               f"`{meta['command']}`; session {meta['session_s']:.0f} s.\n")
    markdown = render_markdown(summaries, heading=heading)
    results.mkdir(parents=True, exist_ok=True)
    (results / "field.md").write_text(render_markdown(summaries, heading=heading, every=True))
    (results / "field.json").write_text(json.dumps(
        {"meta": meta, "suites": to_json(summaries)}, indent=1))
    return markdown


def _tcplab_version() -> str:
    """The checkout's commit (tcplab is installed from it), or a note that git has none."""
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"


def main(argv: list[str]) -> int:
    args, extra = _parse(argv)
    args.results = args.results.resolve()  # the runs write into it from their own cwd
    runs_dir = args.results / "runs"
    if args.table_only:
        saved = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*.record.json"))]
        meta = json.loads((args.results / "field.json").read_text())["meta"]
        print(_table(saved, meta, args.results))
        return 0
    names = [n.strip() for n in args.suites.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown or args.runs < 1:
        print(f"unknown suites {unknown} (of {list(SUITES)}) or --runs < 1", file=sys.stderr)
        return 2
    started = time.monotonic()
    work = args.work.resolve()
    prepared = [prepare(SUITES[name], work, REPO) for name in names]
    prepared_s = time.monotonic() - started
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs_dir.mkdir(parents=True)
    records: list[dict[str, Any]] = []
    for suite in prepared:
        for record in alternate(suite, work, runs_dir, args.runs, extra):
            name = f"{record['suite']}-{record['index']}-{record['mode']}"
            (runs_dir / f"{name}.record.json").write_text(json.dumps(record, indent=1))
            records.append(record)
    shown = [a for i, a in enumerate(argv)  # as typed after nox's --, without nox's --work
             if a != "--work" and (i == 0 or argv[i - 1] != "--work")]
    command = "nox -s plugin-field" + (f" -- {shlex.join(shown)}" if shown else "")
    meta = {
        "date": datetime.date.today().isoformat(),
        "command": command,
        "runs": args.runs,
        "versions": ", ".join(f"{p.suite.name} {p.version}" for p in prepared),
        "tcplab": _tcplab_version(),
        "python": sys.version.split()[0],
        "aiohttp_files": list(AIOHTTP_FILES),
        "install_s": round(prepared_s, 1),
        "session_s": round(time.monotonic() - started, 1),
        "freeze": {p.suite.name: list(p.freeze) for p in prepared},
    }
    print(_table(records, meta, args.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
