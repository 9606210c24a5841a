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
                                              [--baseline OLD/bench.json] [--quick]

It prints a Markdown table and writes ``BENCH.md`` and ``bench.json`` into ``--out``.
The file is named ``bench_*.py`` so that pytest never collects it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def measure(fn: Op, *, budget: float, min_reps: int, max_reps: int) -> list[float]:
    """Call ``fn`` (once to warm up, then) until ``min_reps`` calls and ``budget`` seconds
    are both spent, or ``max_reps`` calls; return each call's duration in seconds."""
    fn()
    times: list[float] = []
    clock = time.perf_counter
    started = clock()
    while len(times) < max_reps and (len(times) < min_reps or clock() - started < budget):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


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


def bench_size(target: Target, others: int, quick: bool) -> dict[str, Any]:
    """Time every operation through every reader with the table as it is now."""
    scale = 0.3 if quick else 1.0
    diag = SockDiag()
    end, port = target.end, target.port
    fast = {"budget": 1.5 * scale, "min_reps": 200, "max_reps": int(20000 * scale) or 200}
    slow = {"budget": 4.0 * scale, "min_reps": 7 if quick else 11, "max_reps": 400}
    ss_lookup = ss("state", "all", "src", str(end.local), "dst", str(end.remote))
    ss_port = ss("state", "all", f"( sport = :{port} or dport = :{port} )")

    def diag_cold() -> object:
        with SockDiag() as fresh:
            return fresh.dump()

    plan: list[tuple[str, str, Op, dict[str, Any]]] = [
        ("lookup", "sock_diag", lambda: diag.lookup(end), fast),
        ("lookup", "psutil", psutil_lookup(end), slow),
        ("lookup", "ss", ss_lookup, slow),
        ("port", "sock_diag", lambda: diag.dump(port=port), fast),
        ("port", "psutil", psutil_port(port), slow),
        ("port", "ss", ss_port, slow),
        ("full", "sock_diag", diag.dump, slow),
        ("full", "sock_diag_cold", diag_cold, slow),
        ("full", "psutil", psutil_tcp, slow),
        ("full", "ss", ss(), slow),
    ]
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
    results: dict[str, Any] = {"others": others, "seen": seen, "ops": {}}
    for op, reader, fn, reps in plan:
        gc.collect()
        times = measure(fn, **reps)
        results["ops"].setdefault(op, {})[reader] = {
            "median_ms": statistics.median(times) * 1e3,
            "p10_ms": statistics.quantiles(times, n=10)[0] * 1e3,
            "p90_ms": statistics.quantiles(times, n=10)[-1] * 1e3,
            "reps": len(times),
        }
        print(f"  {others:>6} others  {op:<6} {reader:<14} "
              f"{results['ops'][op][reader]['median_ms']:9.4f} ms  ({len(times)} reps)",
              file=sys.stderr, flush=True)
    diag.close()
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
    """The issue's targets, each with whether it is met and the figures behind it."""
    lookups = [s["ops"]["lookup"]["sock_diag"]["median_ms"] for s in sizes]
    biggest = sizes[-1]
    full = biggest["ops"]["full"]
    ours, cold = full["sock_diag"]["median_ms"], full["sock_diag_cold"]["median_ms"]
    vs_psutil = full["psutil"]["median_ms"] / ours
    vs_ss = full["ss"]["median_ms"] / ours
    cold_psutil = full["psutil"]["median_ms"] / cold
    cold_ss = full["ss"]["median_ms"] / cold
    flat = max(lookups) / min(lookups)
    n = biggest["others"]
    return [
        (f"exact lookup <= {LOOKUP_MAX_MS} ms at every size", max(lookups) <= LOOKUP_MAX_MS,
         "medians " + ", ".join(f"{fmt(x)} ms" for x in lookups)),
        (f"exact lookup flat (slowest/fastest median <= {LOOKUP_FLAT_RATIO})",
         flat <= LOOKUP_FLAT_RATIO, f"ratio {flat:.2f}"),
        (f"full dump of {n} others >= {FULL_DUMP_VS_PSUTIL:g}x faster than psutil",
         min(vs_psutil, cold_psutil) >= FULL_DUMP_VS_PSUTIL,
         f"{vs_psutil:.1f}x (fresh SockDiag each call: {cold_psutil:.1f}x)"),
        (f"full dump of {n} others faster than `ss -tanH`", min(vs_ss, cold_ss) > FULL_DUMP_VS_SS,
         f"{vs_ss:.2f}x (fresh SockDiag each call: {cold_ss:.2f}x)"),
    ]


def render(report: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """The Markdown report: conditions, the table of medians and ratios, the targets."""
    sizes = report["sizes"]
    lines = [
        "# Observer benchmark (tcplab sock_diag vs psutil vs ss)",
        "",
        f"- namespace: {report['namespace']}",
        f"- kernel {report['host']['kernel']}, Python {report['host']['python']}, "
        f"{report['host']['cpus']} CPUs (shared with other work: medians, not means), "
        f"psutil {report['host']['psutil']}, {report['host']['ss']}",
        f"- fd limit {report['fd_limit']}; other sockets per size by state: "
        + "; ".join(f"{s['others']}: {s['seen']['states']}" for s in sizes),
        "- every reader saw the same sockets: "
        + "; ".join(f"{s['others']}: sock_diag {s['seen']['full_sock_diag']}, psutil "
                    f"{s['seen']['full_psutil']}, ss {s['seen']['full_ss']}" for s in sizes),
        "- `sock_diag` reuses one SockDiag; `sock_diag (fresh)` opens a new one per call (no warm "
        "caches). psutil: `net_connections(kind=\"tcp\")`, filtered in Python for lookup/port. "
        "ss: `ss -tanH` subprocess with `src/dst` or `sport/dport` filters.",
        "",
    ]
    head = ["operation", "others", "sock_diag ms", "sock_diag (fresh) ms", "psutil ms", "ss ms",
            "psutil / sock_diag", "ss / sock_diag", "reps (diag/psutil/ss)"]
    if baseline:
        head.insert(3, "sock_diag before ms")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {"lookup": "exact 4-tuple lookup", "port": "port-filtered dump", "full": "full dump"}
    old = {(s["others"], op): r for s in (baseline or {}).get("sizes", []) for op, r in s["ops"].items()}
    for op in ("lookup", "port", "full"):
        for s in sizes:
            r = s["ops"][op]
            ours = r["sock_diag"]["median_ms"]
            cold = r.get("sock_diag_cold", {}).get("median_ms")
            row = [names[op], str(s["others"]), fmt(ours), fmt(cold) if cold else "",
                   fmt(r["psutil"]["median_ms"]), fmt(r["ss"]["median_ms"]),
                   f"{r['psutil']['median_ms'] / ours:.1f}x", f"{r['ss']['median_ms'] / ours:.1f}x",
                   "/".join(str(r[k]["reps"]) for k in ("sock_diag", "psutil", "ss"))]
            if baseline:
                before = old.get((s["others"], op), {}).get("sock_diag", {}).get("median_ms")
                row.insert(3, fmt(before) if before else "")
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target | result | figures |", "|---|---|---|"]
    lines += [f"| {name} | {verdict(ok)} | {why} |" for name, ok, why in report["targets"]]
    if baseline:
        lines += ["", f"'before' column: {baseline.get('label') or 'baseline'} "
                  f"({baseline.get('started', '?')})."]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="0,2000,20000", help="other sockets, comma separated")
    parser.add_argument("--out", default="results/bench", help="directory for BENCH.md and bench.json")
    parser.add_argument("--baseline", help="an earlier bench.json: add its sock_diag medians as 'before'")
    parser.add_argument("--label", default="", help="a name for this run, kept in bench.json")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
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
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
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
                 "cpus": os.cpu_count(), "psutil": psutil.__version__, "ss": ss_version},
        "sizes": [],
    }
    print(f"bench: {namespace}; fd limit {fd_limit}", file=sys.stderr)
    target = Target()
    farms: list[Farm] = []
    have = 0
    try:
        for size in sizes:
            have = grow(farms, size, have, fd_limit)
            gc.freeze()  # the farm is scaffolding: keep the collector from rescanning it
            report["sizes"].append(bench_size(target, have, args.quick))
    finally:
        for farm in farms:
            farm.close()
        target.close()
    report["targets"] = check_targets(report["sizes"])
    text = render(report, baseline)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "BENCH.md").write_text(text)
    (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {out / 'BENCH.md'}, {out / 'bench.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
