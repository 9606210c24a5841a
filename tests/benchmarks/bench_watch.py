"""Benchmark: ``tcplab watch`` and ``tcplab export`` at 20,000 and 50,000 sockets (issue 14),
against ``ss`` measured in the same rounds.

Run as root: ``python tests/benchmarks/bench_watch.py [--sizes 20000,50000] [--rounds R]``;
``python -m tests.benchmarks`` runs it (as a child process, in a namespace of its own) after
the observer benchmark and puts its section and targets in BENCH.md.

The sockets are made in a private network namespace (this process unshares into one, so
the host's sockets neither race nor inflate the count, and everything vanishes when the
script exits: the namespace dies with it). The mix looks like a server with a CLOSE_WAIT
problem:

* 40 % TIME_WAIT (closed connections: no owner, no fd),
* 30 % ESTABLISHED pairs (both ends held by a worker),
* 30 % CLOSE_WAIT / FIN_WAIT2 pairs (the client closed, the server end is leaked),

the owned ones held by forked workers that sleep (as a leaking server's idle workers do),
so the per-owner table has rows. The table grows from one size to the next (TIME_WAIT
sockets last 60 s): the 50,000 are the 20,000 plus 30,000 more.

Each reading is timed in rounds, every reader once per round in turn, so that each ratio
compares readings made under the same load (the machine is shared). Readers:

* ``tcplab watch --once`` and ``ss -tanp`` (owners), ``ss -tan``, ``ss -tanH``: whole
  processes, wall clock;
* a ``watch`` refresh as the live loop makes it (``watch.take`` with the ``FdMemory`` of
  the previous refreshes), and a cold one (no memory: every fd read);
* the ``sock_diag`` tally alone (the kernel's walk and the reading of the replies);
* a full dump with a fresh ``SockDiag`` (records, no memo of any earlier dump);
* a scrape of a running ``tcplab export`` (HTTP GET /metrics, OpenMetrics).

The issue's targets in milliseconds are judged as ratios against ``ss -tan`` of the same
run, as the issue measured ``ss -tan`` at 50,000 sockets: 95 ms (so "refresh <= 100 ms" is
"<= 1.05x ss -tan"); the others are ratios against the named tool.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_startup

from tcplab import watch
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.netns import enter_private_netns
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import FdMemory

LISTENERS = 16
WORKERS = 4  # processes holding the owned sockets (RLIMIT_NOFILE may be 20,000 and fixed)
SIZES = (20_000, 50_000)
ROUNDS = 7
QUICK_ROUNDS = 3
#: Issue 14's figures: targets in ms and ``ss -tan`` at 50,000 sockets, which they are
#: scaled by into ratios.
ISSUE_SS_TAN_MS = 95.0
REFRESH_MAX_MS = 100.0
SCRAPE_MAX_MS = 150.0


def _pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return client, server


def _hold(listeners: list[socket.socket], established_pairs: int, close_wait_pairs: int) -> int:
    """Fork a worker that opens its share of owned sockets and holds them until told to
    stop (its stdin pipe closes); return the pipe's write end once the worker is ready."""
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    if os.fork() == 0:  # the worker
        try:
            os.close(ready_r)
            os.close(stop_w)
            keep: list[socket.socket] = []
            for i in range(established_pairs):
                keep += _pair(listeners[i % LISTENERS])
            for i in range(close_wait_pairs):
                client, server = _pair(listeners[i % LISTENERS])
                client.close()  # the peer closes; this "server" never does: CLOSE_WAIT
                keep.append(server)
            os.write(ready_w, b"1")
            os.read(stop_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(stop_r)
    if os.read(ready_r, 1) != b"1":
        raise RuntimeError("a worker failed to open its sockets")
    os.close(ready_r)
    return stop_w


def make_sockets(total: int) -> tuple[list[socket.socket], list[int], dict[str, int]]:
    """Open ``total`` sockets in the mix above; return the listeners, the workers' stop
    pipes and the expected counts per state."""
    listeners = []
    for _ in range(LISTENERS):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4096)
        listeners.append(lsock)
    time_wait = int(total * 0.4)
    established_pairs = int(total * 0.3) // 2
    close_wait_pairs = (total - time_wait - 2 * established_pairs - LISTENERS) // 2
    counts = {"TIME_WAIT": time_wait, "ESTABLISHED": 2 * established_pairs,
              "CLOSE_WAIT": close_wait_pairs, "FIN_WAIT2": close_wait_pairs, "LISTEN": LISTENERS}
    for i in range(time_wait):  # the client closes first and holds the TIME_WAIT
        client, server = _pair(listeners[i % LISTENERS])
        client.close()
        server.recv(1)
        server.close()
    stops = [
        _hold(listeners, established_pairs // WORKERS + (w < established_pairs % WORKERS),
              close_wait_pairs // WORKERS + (w < close_wait_pairs % WORKERS))
        for w in range(WORKERS)
    ]
    return listeners, stops, counts


def run_lines(argv: list[str]) -> int:
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return len(out.splitlines())


class Exporter:
    """A running ``tcplab export`` on a free loopback port, scraped over HTTP."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([*bench_startup.tcplab_command(), "export", "--listen",
                                      "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "tcplab export: serving http://HOST:PORT/metrics"
        if "http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"tcplab export did not start: {line!r}")
        self.port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def scrape(self) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/metrics",
                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"scrape: HTTP {response.status}")
            return body
        finally:
            conn.close()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def scraped_total(body: bytes) -> int:
    """The sum of ``tcplab_sockets`` in one scrape."""
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("tcplab_sockets{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def interleave(readers: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Each reader once per round, in an order rotated every round, after one warm-up call
    each (it also fills the refresh's ``FdMemory`` and the exporter's)."""
    for fn in readers.values():
        fn()
    names = list(readers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            started = time.perf_counter()
            readers[name]()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def measure_size(expected: dict[str, int], rounds: int, exporter: Exporter) -> dict[str, Any]:
    observer = DiagObserver()
    memory = FdMemory()
    everything = watch.WatchFilter()
    tcplab = bench_startup.tcplab_command()
    reuse: list[tuple[int, int]] = []

    def refresh() -> int:
        snap = watch.take(observer, everything, memory=memory)
        reuse.append((memory.reused, memory.scanned))
        return snap.total

    def fresh_dump() -> int:
        with SockDiag() as diag:
            return len(diag.dump())

    readers: dict[str, Callable[[], object]] = {
        "tcplab watch --once": lambda: subprocess.run([*tcplab, "watch", "--once"], check=True,
                                                      stdout=subprocess.DEVNULL),
        "ss -tanp": lambda: run_lines(["ss", "-tanp"]),
        "ss -tan": lambda: run_lines(["ss", "-tan"]),
        "ss -tanH": lambda: run_lines(["ss", "-tanH"]),
        "watch refresh (FdMemory)": refresh,
        "watch refresh, cold (every fd read)": lambda: watch.take(observer, everything).total,
        "sock_diag tally alone": lambda: len(observer.tally().owned),
        "full dump, fresh SockDiag": fresh_dump,
        "export scrape (HTTP)": exporter.scrape,
    }
    # What each reader sees: the same sockets, or the comparison means nothing.
    once = json.loads(subprocess.run([*tcplab, "watch", "--once", "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    warm = watch.take(observer, everything, memory=memory)
    seen = {"expected": sum(expected.values()), "watch --once": once["total"],
            "refresh": warm.total, "owned by workers": sum(
                sum(c.values()) for _p, c in warm.owners.items()),
            "ss -tanH": run_lines(["ss", "-tanH"]), "dump": fresh_dump(),
            "export": scraped_total(exporter.scrape()), "states": once["states"]}
    times = interleave(readers, rounds)
    observer.close()
    memory.close()
    figures = {name: {"median_ms": statistics.median(ms), "min_ms": min(ms)}
               for name, ms in times.items()}
    return {"sockets": seen["ss -tanH"], "seen": seen, "figures": figures, "rounds": rounds,
            "reuse": reuse[-1] if reuse else (0, 0)}


def measure(sizes: Sequence[int], rounds: int) -> dict[str, Any]:
    """Grow the namespace's table to each size in turn and time every reader at it."""
    if os.geteuid() != 0:
        raise SystemExit("bench_watch: needs root (a private network namespace)")
    namespace = enter_private_netns({"net.ipv4.ip_local_port_range": "1024 65535",
                                     "net.ipv4.tcp_max_tw_buckets": 1_000_000})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listeners: list[socket.socket] = []
    stops: list[int] = []
    expected: dict[str, int] = {}
    section: dict[str, Any] = {"namespace": namespace, "sizes": [], "rounds": rounds,
                               "ss": shutil.which("ss") is not None}
    exporter = None
    try:
        have = 0
        for size in sorted(sizes):
            started = time.perf_counter()
            more_listeners, more_stops, counts = make_sockets(size - have)
            listeners += more_listeners
            stops += more_stops
            for state, n in counts.items():
                expected[state] = expected.get(state, 0) + n
            have = sum(expected.values())
            print(f"bench_watch: {have} sockets ({time.perf_counter() - started:.1f} s to "
                  f"add), timing...", file=sys.stderr, flush=True)
            if exporter is None:
                exporter = Exporter()
            result = measure_size(expected, rounds, exporter)
            section["sizes"].append(result)
            print("  " + "  ".join(f"{name} {fig['median_ms']:.1f}"
                                   for name, fig in result["figures"].items()),
                  file=sys.stderr, flush=True)
    finally:
        if exporter is not None:
            exporter.close()
        for stop in stops:
            os.close(stop)
        for _ in stops:
            os.wait()
        for sock in listeners:
            sock.close()
    section["targets"] = targets(section)
    return section


def _ratio(section: dict[str, Any], name: str, tool: str) -> tuple[float, float, float]:
    figures = section["figures"]
    ours, theirs = figures[name]["median_ms"], figures[tool]["median_ms"]
    return ours, theirs, ours / theirs


def _within(ms: float, limit: float) -> str:
    """The absolute figure against the issue's milliseconds: it moves with the machine's
    load, which is why the ratio decides."""
    return f"{'within' if ms <= limit else 'over'} {limit:g} ms"


def targets(section: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, figures and, if missed, by how much and where the time goes)."""
    found: list[tuple[str, bool, str]] = []
    for index, size in enumerate(section["sizes"]):
        n = size["sockets"]
        figures = size["figures"]
        tally = figures["sock_diag tally alone"]["median_ms"]
        once, ssp, ratio = _ratio(size, "tcplab watch --once", "ss -tanp")
        why = "" if ratio <= 1 else (
            f"; missed by {once - ssp:.0f} ms: start-up, then a cold scan of every fd "
            f"(cold refresh {figures['watch refresh, cold (every fd read)']['median_ms']:.0f} "
            f"ms, of which the tally {tally:.0f} ms)")
        found.append((f"`tcplab watch --once` wall <= `ss -tanp` at {n} sockets", ratio <= 1,
                      f"{once:.0f} ms vs {ssp:.0f} ms: {ratio:.2f}x{why}"))
        if n >= 50_000:
            limit = REFRESH_MAX_MS / ISSUE_SS_TAN_MS
            refresh, sstan, ratio = _ratio(size, "watch refresh (FdMemory)", "ss -tan")
            reused, scanned = size["reuse"]
            why = "" if ratio <= limit else (
                f"; missed by {(ratio / limit - 1) * 100:.0f}%: the tally alone takes "
                f"{tally:.0f} ms (the kernel's walk, which `ss -tan` pays too); "
                f"{scanned} processes' fds read again")
            found.append((f"`watch` refresh <= {REFRESH_MAX_MS:g} ms at {n} sockets, owners "
                          f"included (<= {limit:.2f}x `ss -tan`)", ratio <= limit,
                          f"{refresh:.1f} ms = {ratio:.2f}x `ss -tan` {sstan:.0f} ms "
                          f"({reused} processes' fds from memory, {scanned} read; absolute "
                          f"{_within(refresh, REFRESH_MAX_MS)}){why}"))
            limit = SCRAPE_MAX_MS / ISSUE_SS_TAN_MS
            scrape, sstan, ratio = _ratio(size, "export scrape (HTTP)", "ss -tan")
            why = "" if ratio <= limit else (
                f"; missed by {(ratio / limit - 1) * 100:.0f}%: a scrape is a refresh "
                f"({refresh:.0f} ms) plus the OpenMetrics text and HTTP")
            found.append((f"`tcplab export` scrape <= {SCRAPE_MAX_MS:g} ms at {n} sockets "
                          f"(<= {limit:.2f}x `ss -tan`)", ratio <= limit,
                          f"{scrape:.1f} ms = {ratio:.2f}x `ss -tan` {sstan:.0f} ms (absolute "
                          f"{_within(scrape, SCRAPE_MAX_MS)}){why}"))
        if index == 0:  # the issue's goal is at 20,000: the first, smallest size
            dump, ssh, ratio = _ratio(size, "full dump, fresh SockDiag", "ss -tanH")
            why = "" if ratio <= 1 else (
                f"; missed by {dump - ssh:.0f} ms, of which the kernel's walk and the reading "
                f"of the replies (the tally) take {tally:.0f} ms")
            found.append((f"full dump with a fresh parser >= `ss -tanH` at {n} sockets",
                          ratio <= 1, f"{dump:.1f} ms vs {ssh:.1f} ms: `ss -tanH` / dump = "
                          f"{1 / ratio:.2f}x{why}"))
    return found


def render(section: dict[str, Any]) -> list[str]:
    """Markdown lines: per size, the medians and ratios; then the targets."""
    lines = [
        "## Live at scale (issue 14: `watch` and `export` at 20,000 and 50,000 sockets)",
        "",
        f"A private network namespace ({section['namespace']}) holding the mix of "
        "bench_watch.py (40% TIME_WAIT, 30% ESTABLISHED, 15% CLOSE_WAIT + 15% FIN_WAIT2, owned "
        f"sockets held by {WORKERS} sleeping workers per size step). {section['rounds']} "
        "interleaved rounds after a warm-up; wall-clock medians in ms; ratios against the "
        "tools in the same rounds.",
        "",
    ]
    for size in section["sizes"]:
        seen = size["seen"]
        lines += [f"### {size['sockets']} sockets", "",
                  "seen: " + ", ".join(f"{k} {v}" for k, v in seen.items() if k != "states")
                  + f"; states {seen['states']}", ""]
        sstan = size["figures"]["ss -tan"]["median_ms"]
        ssp = size["figures"]["ss -tanp"]["median_ms"]
        rows = [[name, f"{fig['median_ms']:.1f}", f"{fig['min_ms']:.1f}",
                 f"{fig['median_ms'] / sstan:.2f}x", f"{fig['median_ms'] / ssp:.2f}x"]
                for name, fig in size["figures"].items()]
        lines += ["| reading | median ms | best ms | / `ss -tan` | / `ss -tanp` |",
                  "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += ["| target | result | figures |", "|---|---|---|"]
    lines += [f"| {name} | {'**met**' if ok else '**MISSED**'} | {why} |"
              for name, ok, why in section["targets"]]
    return lines


def run(quick: bool) -> dict[str, Any] | str:
    """This benchmark as a child process (a namespace and sockets of its own, gone when it
    exits): its section, or why there is none."""
    argv = [sys.executable, __file__, "--json", "-"]
    if quick:
        argv += ["--rounds", str(QUICK_ROUNDS)]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        return f"bench_watch failed (exit {done.returncode})"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="sockets in the table, comma separated")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", metavar="PATH", help="write the section as JSON (- : stdout)")
    args = parser.parse_args(argv)
    section = measure([int(x) for x in args.sizes.split(",") if x.strip()], args.rounds)
    if args.json == "-":
        print(json.dumps(section))
    else:
        print("\n".join(render(section)))
        if args.json:
            Path(args.json).write_text(json.dumps(section, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
