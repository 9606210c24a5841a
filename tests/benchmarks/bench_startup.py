"""Benchmark: how long the ``tcplab`` command takes to start, against a bare interpreter.

Two figures of project issue 14 ("a fast start"): ``tcplab --version`` (the cost of loading
the command line at all) and ``tcplab watch --once`` on an idle host (a one-shot reading,
where start-up is most of the time). Each is timed as a whole process, wall clock, from
``fork`` to exit, interleaved in rounds with ``python -c pass`` run by the same interpreter:
the machine is shared and noisy, so each figure is also given as a ratio against that bare
start measured in the same rounds. The targets are the issue's milliseconds; the ratio
targets are the same milliseconds over the issue's bare start of 11 ms, and it is the ratio
that decides whether a target is met (an absolute figure moves with the machine's load).

``bench_observer`` runs this first, in its private network namespace before any socket of
its own exists (so "idle" means an empty table); alone::

    python tests/benchmarks/bench_startup.py [--rounds N]

The file is named ``bench_*.py`` so that pytest never collects it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Targets of issue 14, in ms, and the bare ``python -c pass`` they were set against.
VERSION_MAX_MS = 60.0
WATCH_ONCE_MAX_MS = 120.0
ISSUE_BARE_MS = 11.0
ROUNDS = 15
QUICK_ROUNDS = 5


def tcplab_command() -> list[str]:
    """The console script next to this interpreter (what a user runs), else ``-m tcplab``."""
    script = Path(sys.executable).parent / "tcplab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tcplab"]


def commands() -> dict[str, list[str]]:
    tcplab = tcplab_command()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "tcplab --version": [*tcplab, "--version"],
        "tcplab watch --once": [*tcplab, "watch", "--once"],
    }


def wall_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace').strip()}")
    return elapsed


def measure(rounds: int) -> dict[str, Any]:
    """Each command once per round, in an order that rotates every round (so none always
    runs right after another), after one unmeasured warm-up round (page cache, .pyc files)."""
    argvs = commands()
    names = list(argvs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        wall_ms(argvs[name])
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(wall_ms(argvs[name]))
    bare = statistics.median(times["python -c pass"])
    figures = {name: {"median_ms": statistics.median(ms), "min_ms": min(ms),
                      "ratio": statistics.median(ms) / bare, "runs": len(ms)}
               for name, ms in times.items()}
    return {"rounds": rounds, "command": " ".join(tcplab_command()), "figures": figures,
            "targets": targets(figures)}


def targets(figures: dict[str, dict[str, float]]) -> list[tuple[str, bool, str]]:
    """(target, met, figures) per goal: met when the ratio to the bare start is within the
    issue's target over its bare 11 ms; the absolute median is shown beside it."""
    bare = figures["python -c pass"]["median_ms"]
    found = []
    for name, limit in (("tcplab --version", VERSION_MAX_MS),
                        ("tcplab watch --once", WATCH_ONCE_MAX_MS)):
        fig = figures[name]
        ratio_max = limit / ISSUE_BARE_MS
        found.append((
            f"`{name}` <= {limit:g} ms (<= {ratio_max:.1f}x `python -c pass`)",
            fig["ratio"] <= ratio_max,
            f"median {fig['median_ms']:.1f} ms = {fig['ratio']:.2f}x bare {bare:.1f} ms "
            f"(absolute {'within' if fig['median_ms'] <= limit else 'over'} {limit:g} ms)",
        ))
    return found


def render(section: dict[str, Any]) -> list[str]:
    """Markdown lines: the medians and ratios, then the targets."""
    lines = [
        "## Start-up (issue 14: a fast start)",
        "",
        f"Whole processes, wall clock, {section['rounds']} interleaved rounds (order rotated "
        f"each round) after one warm-up; `tcplab` is `{section['command']}`. Ratios are "
        "against `python -c pass` (same interpreter) in the same rounds.",
        "",
        "| command | median ms | best ms | / `python -c pass` |",
        "|---|---|---|---|",
    ]
    for name, fig in section["figures"].items():
        lines.append(f"| `{name}` | {fig['median_ms']:.1f} | {fig['min_ms']:.1f} | "
                     f"{fig['ratio']:.2f}x |")
    lines += ["", "| target | result | figures |", "|---|---|---|"]
    lines += [f"| {name} | {'**met**' if ok else '**MISSED**'} | {why} |"
              for name, ok, why in section["targets"]]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measured runs per command")
    args = parser.parse_args(argv)
    print(f"bench: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
          file=sys.stderr)
    print("\n".join(render(measure(args.rounds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
