"""Running many scenarios: one child process per run, several at once, results on disk.

Each run is a child process (``tcplab.kernel.process.run_in_child``, the protocol
``tcplab.isolated`` uses too) that loads the scenario file and calls ``run_in_process``, the
same function ``python <scenario file>`` calls; its result comes back on a pipe, so a run
leaves nothing on disk. A process per run is what lets a namespaced scenario own a network
namespace that dies with it, keeps one scenario's leaks (on purpose or not) away from the
others, and lets a hung run be stopped without taking the runner down. A run's process
cleans up after itself (sockets, tracefs instance) when the runner stops it or dies.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from tcplab import __version__, catalog, ledger
from tcplab.errors import make_dir
from tcplab.kernel import process, sysctl
from tcplab.scenario import Scenario, ScenarioResult, run_in_process


@dataclass
class RunReport:
    """Everything one ``tcplab run`` produced."""

    run_id: str
    started: str
    results: list[ScenarioResult] = field(default_factory=list)
    wall_time: float = 0.0
    #: The scenarios known when the run started: lets the ledger tell "not run" from "no scenario".
    catalog: dict[str, Scenario] | None = None

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    def to_json(self) -> dict[str, Any]:
        data = {
            "tcplab": __version__,
            "run_id": self.run_id,
            "started": self.started,
            "wall_time_s": round(self.wall_time, 3),
            "host": {
                "kernel": platform.release(),
                "machine": platform.machine(),
                "python": platform.python_version(),
                "uid": os.geteuid(),
            },
            "host_sysctls": sysctl.read_watched(),
            "summary": summarize(self.results),
            "scenarios": [r.to_json() for r in self.results],
        }
        # Built from the scenarios' results just above: every claim, measured or why not.
        data["ledger"] = ledger.to_json(ledger.build(data, self.catalog))
        return data


def summarize(results: Sequence[ScenarioResult]) -> list[dict[str, Any]]:
    """One row per scenario id: runs, outcomes, median duration, verdicts across its runs."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r.id, {"id": r.id, "title": r.title, "runs": 0, "passed": 0,
                                     "failed": 0, "skipped": 0, "durations": [], "verdicts": {},
                                     "mode": r.mode, "reason": ""})
        row["runs"] += 1
        row[r.status] += 1
        if r.status != "skipped":
            row["durations"].append(r.duration)
        if r.status != "passed" and not row["reason"]:
            row["reason"] = r.reason.splitlines()[0] if r.reason else ""
        for v in r.verdicts:
            row["verdicts"].setdefault(v["claim"], set()).add(v["verdict"])
    out = []
    for row in rows.values():
        durations = row.pop("durations")
        row["median_s"] = round(statistics.median(durations), 4) if durations else None
        row["verdicts"] = {c: "/".join(sorted(v)) for c, v in sorted(row["verdicts"].items())}
        out.append(row)
    return out


async def run_one(scenario: Scenario, *, sysctls: Mapping[str, str | None] | None = None,
                  max_wait: float | None = None) -> ScenarioResult:
    """Run ``scenario`` once in a child process and read back its result; ``sysctls`` and
    ``max_wait`` are ``run_in_process``'s run-time overrides (``tcplab try``)."""
    assert scenario.path is not None
    arguments: dict[str, Any] = {"path": str(scenario.path)}
    seconds = scenario.timeout
    if sysctls is not None:
        arguments.update(sysctls=dict(sysctls), max_wait=max_wait)
        seconds += 2 * (max_wait or 0.0)
    try:
        done = await process.run_in_child("tcplab.runner:run_file", arguments, seconds=seconds)
    except OSError as exc:
        return ScenarioResult(scenario.id, scenario.title, scenario.claims, "failed",
                              reason=f"could not start {sys.executable}: {exc.strerror}")
    if done.status is None:
        return ScenarioResult(scenario.id, scenario.title, scenario.claims, "failed",
                              reason=f"killed: still running {done.limit:.0f} s after it started",
                              duration=done.duration)
    if done.reply is not None and done.reply["ok"]:
        return ScenarioResult.from_json(done.reply["value"])
    why = (f"{done.reply['kind']}: {done.reply['error']}" if done.reply is not None
           else done.stderr_tail())
    failed = ScenarioResult(scenario.id, scenario.title, scenario.claims, "failed",
                            reason=f"exited {done.status} without a result: {why}",
                            duration=done.duration)
    failed.exit_status = done.status
    return failed


def run_file(path: str, sysctls: dict[str, str | None] | None = None,
             max_wait: float | None = None) -> dict[str, Any]:
    """In the run's child: load the scenario at ``path`` and run it (``run_one``)."""
    return run_in_process(catalog.load(Path(path)), sysctls=sysctls,
                          max_wait=max_wait).to_json()


class Progress(Protocol):
    """What ``run_many`` tells a display (``tcplab.progress``): a run started, a run ended."""

    def started(self, index: int, scenario: Scenario) -> None: ...

    def finished(self, index: int, done: int, total: int, result: ScenarioResult) -> None: ...


#: Ctrl-C (SIGINT, to the whole foreground process group) and SIGTERM stop a run.
INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
#: Exit statuses of a scenario child that the same Ctrl-C ended.
_INTERRUPTED_CHILD = (130, -signal.SIGINT, -signal.SIGTERM)


class Interrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM; ``results`` holds the runs that finished."""

    def __init__(self, results: list[ScenarioResult]) -> None:
        super().__init__("interrupted")
        self.results = results


async def run_many(
    scenarios: Sequence[Scenario], *, repeat: int = 1, jobs: int = 4, progress: Progress | None = None
) -> list[ScenarioResult]:
    """Run every scenario ``repeat`` times, at most ``jobs`` at once; results in plan order.

    SIGINT and SIGTERM arrive as events, not as a KeyboardInterrupt that trio would raise
    wherever the code happens to be (inside ``fork()``'s at-fork hooks it is swallowed and
    the interrupt is lost): the runs are cancelled — each kills its child in a shielded
    ``finally`` — and ``Interrupted`` carries the runs that had finished.
    """
    plan = [s for _ in range(repeat) for s in scenarios]
    results: list[ScenarioResult | None] = [None] * len(plan)
    limiter = trio.CapacityLimiter(max(1, jobs))
    interrupted = trio.Event()
    done = 0

    async def one(index: int, scenario: Scenario) -> None:
        nonlocal done
        async with limiter:
            if progress:
                progress.started(index, scenario)
            result = await run_one(scenario)
        if result.exit_status in _INTERRUPTED_CHILD:
            # The same Ctrl-C probably reached us too: let it cancel this task rather than
            # report a failure (bounded, in case only the child was signalled).
            with trio.move_on_after(1.0):
                await interrupted.wait()
        results[index] = result
        done += 1
        if progress:
            progress.finished(index, done, len(plan), result)

    async def watch_signals(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(*INTERRUPTS) as signals:
            task_status.started()
            async for _ in signals:
                interrupted.set()
                nursery.cancel_scope.cancel()
                return

    async with trio.open_nursery() as nursery:
        await nursery.start(watch_signals)
        async with trio.open_nursery() as runs:
            for index, scenario in enumerate(plan):
                runs.start_soon(one, index, scenario)
        nursery.cancel_scope.cancel()  # every run finished: stop watching for signals
    finished = [r for r in results if r is not None]
    if interrupted.is_set():
        raise Interrupted(finished)
    return finished


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


def results_dir(report: RunReport, base: Path) -> Path:
    """Make ``<base>/<run id>/`` before anything runs, so an unwritable place fails at once."""
    return make_dir(base / report.run_id, "the results directory")


def write_results(report: RunReport, directory: Path) -> Path:
    """Write ``results.json`` into the run's directory and return its path."""
    path = directory / "results.json"
    path.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    return path


def default_jobs() -> int:
    """Scenarios mostly wait on the kernel, so a few more than the cores keep it busy."""
    return max(2, 2 * (os.cpu_count() or 1))


