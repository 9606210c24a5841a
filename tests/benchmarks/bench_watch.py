"""How long one ``tcplab watch`` refresh takes on a host with 50,000 TCP sockets, vs ``ss``.

Run as root: ``python tests/benchmarks/bench_watch.py [--sockets N] [--rounds R]``.

The sockets are made in a private network namespace (this process unshares into one, so
the host's sockets neither race nor inflate the count, and everything vanishes when the
script exits). The mix looks like a server with a CLOSE_WAIT problem:

* 40 % TIME_WAIT (closed connections: no owner, no fd),
* 30 % ESTABLISHED pairs (both ends held by a worker),
* 30 % CLOSE_WAIT / FIN_WAIT2 pairs (the client closed, the server end is leaked),

the owned ones held by a few forked workers (so the per-owner table has rows).

Each tool reads the same namespace (children inherit it). Printed: the median and best
time per reading over ``--rounds`` readings, and the socket count each one saw.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from tcplab import table, watch
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.netns import enter_private_netns
from tcplab.kernel.observer import DiagObserver

LISTENERS = 16
WORKERS = 4  # processes holding the owned sockets (RLIMIT_NOFILE may be 20,000 and fixed)


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


def timed(fn: Callable[[], int], rounds: int) -> tuple[float, float, int]:
    times, seen = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        seen = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), seen


def run_lines(argv: list[str]) -> int:
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return max(0, len(out.splitlines()) - 1)  # minus the header


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_watch: needs root (a private network namespace)", file=sys.stderr)
        return 3
    enter_private_netns({"net.ipv4.ip_local_port_range": "1024 65535",
                         "net.ipv4.tcp_max_tw_buckets": 1_000_000})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.perf_counter()
    listeners, stops, expected = make_sockets(args.sockets)
    print(f"made {sum(expected.values())} sockets in {time.perf_counter() - started:.1f} s "
          f"(held by this process and {WORKERS} workers): {expected}\n")

    observer = DiagObserver()
    everything = watch.WatchFilter()
    close_wait = watch.WatchFilter.parse(port=None, pid=None, states=["CLOSE_WAIT"])
    one_port = watch.WatchFilter(port=listeners[0].getsockname()[1])
    me = watch.WatchFilter(pid=os.getpid())

    def fresh_dump() -> int:
        with SockDiag() as diag:
            return len(diag.dump())

    cases: list[tuple[str, Callable[[], int]]] = [
        ("tcplab watch: snapshot, all sockets", lambda: watch.take(observer, everything).total),
        ("tcplab watch: snapshot, --state close-wait",
         lambda: watch.take(observer, close_wait).total),
        ("tcplab watch: snapshot, --port (1 listener)",
         lambda: watch.take(observer, one_port).total),
        ("tcplab watch: snapshot, --pid (this process)", lambda: watch.take(observer, me).total),
        ("sock_diag census (states + inodes)", lambda: len(observer.census())),
        ("sock_diag dump, records (reused SockDiag)", lambda: len(observer.snapshot())),
        ("sock_diag dump, records (fresh SockDiag)", fresh_dump),
    ]
    tcplab = [sys.executable, "-m", "tcplab", "watch", "--once", "--json"]
    cases.append(("`tcplab watch --once --json` (process)",
                  lambda: int(json.loads(subprocess.run(tcplab, check=True, capture_output=True,
                                                        text=True).stdout)["total"])))
    ss = shutil.which("ss")
    if ss:
        cases.append(("`ss -tan`", lambda: run_lines([ss, "-tan"])))
        cases.append(("`ss -tanp` (owners)", lambda: run_lines([ss, "-tanp"])))
    netstat = shutil.which("netstat")
    if netstat:
        cases.append(("`netstat -tan`", lambda: run_lines([netstat, "-tan"]) - 1))
    else:
        print("netstat is not installed: not measured")

    rows = []
    for name, fn in cases:
        median, best, seen = timed(fn, args.rounds)
        rows.append((name, f"{median * 1000:.1f}", f"{best * 1000:.1f}", seen))
        print(f"  {name}: {median * 1000:.1f} ms", file=sys.stderr)
    print(table.render(("reading", "median ms", "best ms", "sockets seen"), rows))
    observer.close()
    for stop in stops:
        os.close(stop)
    for _ in stops:
        os.wait()
    for sock in listeners:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
