"""Benchmark: how fast tcplab reads the kernel's TCP tables, against psutil and ``ss``.

Three operations, each with 0, 2,000 and 20,000 *other* sockets in the table:

* exact lookup of one four-tuple (what every ``reaches``/``holds`` poll does);
* a port-filtered snapshot (``SockDiag.dump(port=...)``);
* a full dump (``SockDiag.dump()``).

The same operation is timed through ``psutil.net_connections(kind="tcp")`` (filtered in
Python where the operation is a lookup or a port filter) and through ``ss -tanH`` run as a
subprocess (with the equivalent filter expression), in the same network namespace and the
same run. Run as root, the whole benchmark moves into a private network namespace first, so
the table holds exactly the farm's sockets and nothing of the host's (and the 20,000 sockets
never touch the host's ephemeral ports); without root it falls back to the host's namespace
and says so.

Usage (from a checkout, with tcplab importable)::

    python tests/benchmarks/bench_observer.py [--sizes 0,2000,20000] [--out results/bench]
                                              [--before OLD_DIAG.py] [--quick]

``--before`` takes another version of ``tcplab/kernel/diag.py`` (say ``git show
main:src/tcplab/kernel/diag.py > /tmp/diag_main.py``) and times its SockDiag too, interleaved
with the current one, for a before/after comparison under the same load.

Before the farm is built it times the start-up of the ``tcplab`` command (bench_startup.py:
``--version`` and ``watch --once`` against ``python -c pass``; ``--skip-startup`` leaves it
out).

It prints a Markdown table and writes ``BENCH.md`` and ``bench.json`` into ``--out``.

Where the time goes in a full dump of 20,000 sockets (measured on the 2-core test machine):
the kernel's table walk is shared by every sock_diag reader, ss included. On top of it,
tcplab reads each reply message with one ``struct`` unpack (its length, type, state and
inode) and makes a record that keeps the message's 72 bytes and decodes its four-tuple,
timer and queues only when they are first read (``DiagRecord``); ``ss`` formats a line in
C, then the reader of its output parses it. There is no memo of earlier dumps: a fresh
``SockDiag`` and a reused one cost the same.

Then, in a child process with a namespace of its own, ``bench_watch.py``: ``tcplab watch``
and ``tcplab export`` at 20,000 and 50,000 sockets (issue 14), ``--skip-scale`` leaves it out.
The file is named ``bench_*.py`` so that pytest never collects it.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_startup
import bench_watch
from farm import FD_RESERVE, Farm, Plan, build, raise_fd_limit

from tcplab.errors import Unavailable
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.model import Address, FourTuple
from tcplab.kernel.netns import enter_private_netns

HOST = "127.0.0.1"
#: Targets of project issue 2.
LOOKUP_MAX_MS = 0.2
LOOKUP_FLAT_RATIO = 1.5  # slowest lookup median / fastest, across sizes
FULL_DUMP_VS_PSUTIL = 5.0
FULL_DUMP_VS_SS = 1.0

Op = Callable[[], object]


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (``ss``): user + system.

    On a machine shared with other work, wall time includes waiting for a core; CPU time
    does not, so both are reported.
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Reader:
    """One way to do an operation, with how many calls it makes per round."""

    name: str
    fn: Op
    per_round: int = 1
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def call(self) -> None:
        wall, cpu = time.perf_counter(), cpu_seconds()
        self.fn()
        self.cpu.append(cpu_seconds() - cpu)
        self.wall.append(time.perf_counter() - wall)

    def summary(self) -> dict[str, Any]:
        deciles = statistics.quantiles(self.wall, n=10) if len(self.wall) > 1 else self.wall * 9
        return {"median_ms": statistics.median(self.wall) * 1e3,
                "cpu_median_ms": statistics.median(self.cpu) * 1e3,
                "p10_ms": deciles[0] * 1e3, "p90_ms": deciles[-1] * 1e3, "reps": len(self.wall)}


def interleave(readers: Sequence[Reader], *, budget: float, min_rounds: int, max_rounds: int) -> int:
    """Run the readers in rounds (each ``per_round`` times, in turn) until ``min_rounds``
    rounds and ``budget`` seconds are both spent, or ``max_rounds``; return the rounds run.

    Interleaving is what makes the ratios fair on a shared machine: every reader is timed
    under the same load, instead of one reader during a quiet minute and the next during a
    busy one. Each reader is called once to warm up first.
    """
    for reader in readers:
        reader.fn()
    started = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - started < budget):
        for reader in readers:
            for _ in range(reader.per_round):
                reader.call()
        rounds += 1
    return rounds


def ss(*args: str) -> Callable[[], bytes]:
    """``ss -tanH ARGS`` as a subprocess (its whole output read), the way a script would."""
    argv = ["ss", "-tanH", *args]

    def run() -> bytes:
        return subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout

    return run


def psutil_tcp() -> list[Any]:
    return list(psutil.net_connections(kind="tcp"))


def psutil_lookup(end: FourTuple) -> Op:
    local, remote = (end.local.host, end.local.port), (end.remote.host, end.remote.port)

    def run() -> list[Any]:
        return [c for c in psutil_tcp() if c.raddr and tuple(c.laddr) == local and tuple(c.raddr) == remote]

    return run


def psutil_port(port: int) -> Callable[[], list[Any]]:
    def run() -> list[Any]:
        return [c for c in psutil_tcp() if c.laddr.port == port or (c.raddr and c.raddr.port == port)]

    return run


class Target:
    """The one connection whose four-tuple and port are looked up: a listener and a pair."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.client = socket.create_connection(self.listener.getsockname())
        self.server, _ = self.listener.accept()
        self.port = self.listener.getsockname()[1]
        self.end = FourTuple(Address.of(self.client.getsockname()), Address.of(self.client.getpeername()))

    def close(self) -> None:
        for sock in (self.client, self.server, self.listener):
            sock.close()


def bench_size(target: Target, others: int, quick: bool, before: Any = None) -> dict[str, Any]:
    """Time every operation through every reader with the table as it is now; ``before``
    is another diag module whose SockDiag is timed alongside (or None)."""
    diag = SockDiag()
    end, port = target.end, target.port
    ss_lookup = ss("state", "all", "src", str(end.local), "dst", str(end.remote))
    ss_port = ss("state", "all", f"( sport = :{port} or dport = :{port} )")

    def diag_cold() -> object:
        with SockDiag() as fresh:
            return fresh.dump()

    # Fast readers make many calls per round so that their medians rest on many samples.
    many = 20 if quick else 50
    plan: dict[str, list[Reader]] = {
        "lookup": [Reader("sock_diag", lambda: diag.lookup(end), many),
                   Reader("psutil", psutil_lookup(end)), Reader("ss", ss_lookup)],
        "port": [Reader("sock_diag", lambda: diag.dump(port=port), many if others < 10000 else 5),
                 Reader("psutil", psutil_port(port)), Reader("ss", ss_port)],
        "full": [Reader("sock_diag", diag.dump, 1 if others > 1000 else many),
                 Reader("sock_diag_cold", diag_cold, 1 if others > 1000 else many),
                 Reader("psutil", psutil_tcp), Reader("ss", ss())],
    }
    if before is not None:
        old = before.SockDiag()
        plan["lookup"].append(Reader("before", lambda: old.lookup(end), many))
        plan["port"].append(Reader("before", lambda: old.dump(port=port), plan["port"][0].per_round))
        plan["full"].append(Reader("before", old.dump, plan["full"][0].per_round))
    # What each reader sees: the same sockets, or the comparison means nothing.
    full = diag.dump()
    seen = {
        "lookup_found": diag.lookup(end) is not None,
        "port_sock_diag": len(diag.dump(port=port)),
        "port_psutil": len(psutil_port(port)()),
        "port_ss": len(ss_port().splitlines()),
        "full_sock_diag": len(full),
        "full_psutil": len(psutil_tcp()),
        "full_ss": len(ss()().splitlines()),
        "states": dict(sorted(Counter(r.state.value for r in full).items())),
    }
    del full
    results: dict[str, Any] = {"others": others, "seen": seen, "ops": {}, "rounds": {}}
    for op, readers in plan.items():
        gc.collect()
        rounds = interleave(readers, budget=(2.0 if quick else 6.0), min_rounds=(5 if quick else 11),
                            max_rounds=200)
        results["rounds"][op] = rounds
        results["ops"][op] = {r.name: r.summary() for r in readers}
        print(f"  {others:>6} others  {op:<6} ({rounds} rounds) " + "  ".join(
            f"{r.name} {results['ops'][op][r.name]['median_ms']:.4f} ms" for r in readers),
            file=sys.stderr, flush=True)
    diag.close()
    if before is not None:
        old.close()
    return results


def grow(farms: list[Farm], to: int, have: int, fd_limit: int) -> int:
    """Add a farm so that ``to`` other sockets exist; return the new count."""
    if to <= have:
        return have
    open_fds = len(os.listdir("/proc/self/fd"))
    plan = Plan.for_total(to - have, fd_limit - open_fds - FD_RESERVE)
    started = time.perf_counter()
    farms.append(build(plan, HOST))
    print(f"built {plan.total} sockets ({dict(farms[-1].counts)}) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return have + plan.total


def fmt(ms: float) -> str:
    return f"{ms:.4f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def check_targets(sizes: Sequence[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """The issue's targets, each with whether it is met and the figures behind it (wall-clock
    medians decide; CPU-time ratios are given beside them)."""
    lookups = [s["ops"]["lookup"]["sock_diag"]["median_ms"] for s in sizes]
    biggest = sizes[-1]
    full = biggest["ops"]["full"]
    n = biggest["others"]
    flat = max(lookups) / min(lookups)
    targets = [
        (f"exact lookup <= {LOOKUP_MAX_MS} ms at every size", max(lookups) <= LOOKUP_MAX_MS,
         "medians " + ", ".join(f"{fmt(x)} ms" for x in lookups)),
        (f"exact lookup flat (slowest/fastest median <= {LOOKUP_FLAT_RATIO})",
         flat <= LOOKUP_FLAT_RATIO, f"ratio {flat:.2f}"),
    ]
    for reader, how in (("sock_diag", "one SockDiag reused, as DiagObserver does"),
                        ("sock_diag_cold", "a fresh SockDiag per call")):
        ours = full[reader]

        def ratio(other: str, key: str, ours: dict[str, float] = ours) -> float:
            return float(full[other][key] / ours[key])

        vs_psutil, vs_ss = ratio("psutil", "median_ms"), ratio("ss", "median_ms")
        targets += [
            (f"full dump of {n} others >= {FULL_DUMP_VS_PSUTIL:g}x faster than psutil ({how})",
             vs_psutil >= FULL_DUMP_VS_PSUTIL,
             f"{vs_psutil:.1f}x wall (CPU time: {ratio('psutil', 'cpu_median_ms'):.1f}x)"),
            (f"full dump of {n} others faster than `ss -tanH` ({how})", vs_ss > FULL_DUMP_VS_SS,
             f"{vs_ss:.2f}x wall (CPU time incl. ss's: {ratio('ss', 'cpu_median_ms'):.2f}x)"),
        ]
    return targets


def render(report: dict[str, Any]) -> str:
    """The Markdown report: conditions, the table of medians and ratios, the targets."""
    sizes = report["sizes"]
    lines = [
        "# Observer benchmark (tcplab sock_diag vs psutil vs ss)",
        "",
        f"- namespace: {report['namespace']}",
        f"- kernel {report['host']['kernel']}, Python {report['host']['python']}, "
        f"{report['host']['cpus']} CPUs shared with other work (load average "
        f"{report['host']['load']} at the start), psutil {report['host']['psutil']}, "
        f"{report['host']['ss']}",
        f"- fd limit {report['fd_limit']}; sockets in the table per size, by state: "
        + "; ".join(f"{s['others']}: {s['seen']['states']}" for s in sizes)
        + " (the 3 extra are the looked-up listener and connection)",
        "- every reader saw the same sockets: "
        + "; ".join(f"{s['others']}: sock_diag {s['seen']['full_sock_diag']}, psutil "
                    f"{s['seen']['full_psutil']}, ss {s['seen']['full_ss']}" for s in sizes),
        "- readers run interleaved, in rounds (each reader in turn, fast ones many times per "
        "round), so each ratio compares calls made under the same load. Wall-clock medians; "
        "CPU time (user+system, ss's own included) in the last columns.",
        "- `sock_diag`: one SockDiag reused (as DiagObserver does); `fresh`: a new SockDiag "
        "per call (neither keeps anything of an earlier dump). psutil: "
        "`net_connections(kind=\"tcp\")`, filtered in Python for lookup/port. ss: `ss -tanH` "
        "subprocess with `src/dst` or `sport/dport` filters.",
        "",
    ]
    head = ["operation", "others", "sock_diag ms", "fresh ms", "psutil ms", "ss ms",
            "psutil / sock_diag", "ss / sock_diag", "CPU: psutil / sock_diag",
            "CPU: ss / sock_diag", "calls (diag/psutil/ss)"]
    before = "before" in sizes[0]["ops"]["lookup"]
    if before:
        head[3:3] = ["before ms", "before / sock_diag"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {"lookup": "exact 4-tuple lookup", "port": "port-filtered dump", "full": "full dump"}
    for op in ("lookup", "port", "full"):
        for s in sizes:
            r = s["ops"][op]
            ours, cpu = r["sock_diag"]["median_ms"], r["sock_diag"]["cpu_median_ms"]
            cold = r.get("sock_diag_cold", {}).get("median_ms")
            row = [names[op], str(s["others"]), fmt(ours), fmt(cold) if cold else "",
                   fmt(r["psutil"]["median_ms"]), fmt(r["ss"]["median_ms"]),
                   f"{r['psutil']['median_ms'] / ours:.1f}x", f"{r['ss']['median_ms'] / ours:.2f}x",
                   f"{r['psutil']['cpu_median_ms'] / cpu:.1f}x" if cpu else "",
                   f"{r['ss']['cpu_median_ms'] / cpu:.2f}x" if cpu else "",
                   "/".join(str(r[k]["reps"]) for k in ("sock_diag", "psutil", "ss"))]
            if before:
                then = r["before"]["median_ms"]
                row[3:3] = [fmt(then), f"{then / ours:.2f}x"]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target | result | figures |", "|---|---|---|"]
    lines += [f"| {name} | {verdict(ok)} | {why} |" for name, ok, why in report["targets"]]
    if "startup" in report:
        lines += ["", *bench_startup.render(report["startup"])]
    scale = report.get("scale")
    if isinstance(scale, dict):
        lines += ["", *bench_watch.render(scale)]
    elif scale:
        lines += ["", f"Live at scale (bench_watch.py): not measured: {scale}"]
    if before:
        lines += ["", f"'before': the SockDiag of {report['before']}, reused like `sock_diag`, "
                  "interleaved with it in the same rounds."]
    return "\n".join(lines) + "\n"


def load_diag(path: Path) -> Any:
    """Import another version of tcplab/kernel/diag.py under a name of its own."""
    spec = importlib.util.spec_from_file_location("tcplab_bench_before_diag", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="0,2000,20000", help="other sockets, comma separated")
    parser.add_argument("--out", default="results/bench", help="directory for BENCH.md and bench.json")
    parser.add_argument("--before", metavar="DIAG_PY",
                        help="another diag.py to time alongside (before/after)")
    parser.add_argument("--label", default="", help="a name for this run, kept in bench.json")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
    parser.add_argument("--skip-startup", action="store_true",
                        help="leave out the start-up figures (tcplab --version, watch --once)")
    parser.add_argument("--skip-scale", action="store_true",
                        help="leave out watch/export at 20,000 and 50,000 sockets (bench_watch)")
    parser.add_argument("--host-netns", action="store_true",
                        help="stay in the host's network namespace even as root")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    except ValueError:
        print(f"bench: --sizes must be whole numbers, got {args.sizes!r}", file=sys.stderr)
        return 2
    if not sizes or sizes[0] < 0:
        print("bench: --sizes needs at least one number >= 0", file=sys.stderr)
        return 2
    before = load_diag(Path(args.before)) if args.before else None
    namespace = "host network namespace (--host-netns): other processes' sockets are counted too"
    if not args.host_netns:
        try:
            namespace = f"private network namespace {enter_private_netns()} (root)"
        except Unavailable as exc:
            namespace = f"HOST network namespace, not private ({exc}): other sockets are counted too"
    fd_limit = raise_fd_limit()
    ss_version = subprocess.run(["ss", "-V"], capture_output=True, text=True).stdout.strip()
    report: dict[str, Any] = {
        "label": args.label,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "namespace": namespace,
        "fd_limit": fd_limit,
        "host": {"kernel": platform.release(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
                 "psutil": psutil.__version__, "ss": ss_version},
        "sizes": [],
        "before": args.before,
    }
    print(f"bench: {namespace}; fd limit {fd_limit}", file=sys.stderr)
    if not args.skip_startup:  # first, while the namespace holds no socket: an idle host
        report["startup"] = bench_startup.measure(
            bench_startup.QUICK_ROUNDS if args.quick else bench_startup.ROUNDS)
    target = Target()
    farms: list[Farm] = []
    have = 0
    try:
        for size in sizes:
            have = grow(farms, size, have, fd_limit)
            gc.freeze()  # the farm is scaffolding: keep the collector from rescanning it
            report["sizes"].append(bench_size(target, have, args.quick, before))
    finally:
        for farm in farms:
            farm.close()
        target.close()
    report["targets"] = check_targets(report["sizes"])
    if not args.skip_scale:
        if os.geteuid() == 0:
            report["scale"] = bench_watch.run(args.quick)
        else:
            report["scale"] = "needs root (its sockets are made in a private namespace)"
    text = render(report)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "BENCH.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {out / 'BENCH.md'}, {out / 'bench.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
