"""Benchmark: what the pytest plugin's leak check costs per test (issue 12, item 5).

Two generated suites of 1,000 tests each, written to a temporary directory: trivial
tests (``pass``) and tests that open and close a loopback connection (connect, accept,
close both ends; one listener per module). Each suite is run by pytest in a subprocess
without the check and with ``--tcplab-leaks``, alternating in rounds (the order swaps
every round, so a drift of the machine's load weighs on both), on the same machine in the
same sitting: only the difference means anything on a shared, noisy machine. The figure
is (median wall time with - median without) / 1,000 tests, against the issue's targets:
1 ms per trivial test, 2 ms per connection test.

Run by ``nox -s bench`` after the observer benchmark, or alone::

    python tests/benchmarks/bench_plugin.py [--rounds N] [--tests N]

The file is named ``bench_*.py`` so that pytest never collects it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TESTS = 1000
ROUNDS = 5
QUICK_ROUNDS = 3
#: Targets of issue 12: extra milliseconds per test with the check on.
TARGETS_MS = {"trivial": 1.0, "connection": 2.0}

TRIVIAL_TEST = "def test_{n}():\n    pass\n\n\n"

CONNECTION_HEAD = '''import socket

LISTENER = socket.create_server(("127.0.0.1", 0))


def _open_and_close():
    client = socket.create_connection(LISTENER.getsockname())
    server, _ = LISTENER.accept()
    client.close()
    server.close()


'''
CONNECTION_TEST = "def test_{n}():\n    _open_and_close()\n\n\n"


def write_suites(root: Path, tests: int) -> dict[str, Path]:
    """The two suites, each in its own directory (one module per 100 tests)."""
    suites = {}
    for name, head, body in (("trivial", "", TRIVIAL_TEST),
                             ("connection", CONNECTION_HEAD, CONNECTION_TEST)):
        directory = root / name
        directory.mkdir()
        (directory / "pytest.ini").write_text("[pytest]\n")
        for start in range(0, tests, 100):
            count = min(100, tests - start)
            text = head + "".join(body.format(n=n) for n in range(start, start + count))
            (directory / f"test_{name}_{start // 100:03d}.py").write_text(text)
        suites[name] = directory
    return suites


def plugin_args() -> list[str]:
    """Load the plugin by module when the installed tcplab predates its entry point."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "tcplab" in names else ["-p", "tcplab.pytest_plugin"]


def run_once(directory: Path, check: bool) -> float:
    """Wall seconds of one pytest run of the suite in ``directory``."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args()]
    if check:
        command.append("--tcplab-leaks")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed in {directory} (check={check}):\n{done.stdout[-2000:]}")
    return elapsed


def measure(suite: Path, rounds: int, tests: int) -> dict[str, Any]:
    """Alternating runs without and with the check; medians and the per-test overhead."""
    times: dict[bool, list[float]] = {False: [], True: []}
    run_once(suite, False)  # warm the file cache and the bytecode
    for n in range(rounds):
        for check in ((False, True) if n % 2 == 0 else (True, False)):
            times[check].append(run_once(suite, check))
    without, with_check = statistics.median(times[False]), statistics.median(times[True])
    return {
        "without_s": [round(t, 3) for t in times[False]],
        "with_s": [round(t, 3) for t in times[True]],
        "median_without_s": round(without, 3),
        "median_with_s": round(with_check, 3),
        "overhead_ms_per_test": round((with_check - without) * 1000 / tests, 3),
    }


def render(report: dict[str, Any]) -> str:
    tests = report["tests"]
    lines = [
        f"## Leak check overhead ({tests} tests per suite, {report['rounds']} alternating "
        f"rounds, medians; load {report['load']})",
        "",
        "| suite | without the check | with --tcplab-leaks | overhead per test | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in report["suites"].items():
        target = TARGETS_MS[name]
        overhead = result["overhead_ms_per_test"]
        lines.append(
            f"| {tests} {name} tests | {result['median_without_s']:.2f} s | "
            f"{result['median_with_s']:.2f} s | {overhead:.3f} ms | <= {target:g} ms | "
            f"{'yes' if overhead <= target else 'NO'} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_plugin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--tests", type=int, default=TESTS, help="tests per suite")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds")
    parser.add_argument("--out", default="results/bench", help="directory for plugin.md/.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = QUICK_ROUNDS if args.quick else args.rounds
    report: dict[str, Any] = {"tests": args.tests, "rounds": rounds,
                              "load": " ".join(f"{x:.1f}" for x in os.getloadavg()), "suites": {}}
    with tempfile.TemporaryDirectory(prefix="tcplab-bench-plugin-") as tmp:
        for name, suite in write_suites(Path(tmp), args.tests).items():
            print(f"bench_plugin: {name} suite, {rounds} rounds ...", file=sys.stderr)
            report["suites"][name] = measure(suite, rounds, args.tests)
    text = render(report)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plugin.md").write_text(text)
    (out / "plugin.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
